"""Builds the emulated CUDA module and runs the CUDA tests against it (README.md here).

    VENV/bin/python tests/cuda_emulation/run.py [--build-dir DIR] [--jobs N] [--tests FILE ...]
                                                [other arguments, passed to pytest]

VENV is an environment where losstopo is installed (pip install ., or an editable
install) and pybind11 too (the version the package was built with). Steps:

1. CMake builds the emulated losstopo._core_cuda in the build folder (default
   build/cuda-emulation) from this tree's cuda/landscape.cu and bindings, against the
   installed package (losstopo --cmake-dir) and the environment's pybind11.
2. A copy of the installed Python package is made in BUILD/package/losstopo (its
   Python files and _core; no real _core_cuda) and the emulated module placed into
   it. Nothing is written into the installed package.
3. pytest runs the tests (default: tests/test_cuda.py) in a fresh interpreter with
   PYTHONPATH=BUILD/package, after checking that losstopo and losstopo._core_cuda
   come from the copy and that the module is the emulated one.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Where the installed package is, asked of a separate interpreter (importing losstopo
# here would pin it in this process). The last line of stdout is the answer: an
# editable install may print its rebuild before it.
LOCATE = r"""
import json, os
import losstopo
from losstopo._native import core  # loads OpenBLAS, then _core
from losstopo.cli import cmake_dir
try:
    import pybind11
    pybind11_dir = pybind11.get_cmake_dir()
except ImportError:
    pybind11_dir = None
print(json.dumps(dict(package=os.path.dirname(os.path.abspath(losstopo.__file__)),
                      core=os.path.abspath(core.__file__),
                      cmake_dir=cmake_dir(), pybind11_dir=pybind11_dir)))
"""

# The test interpreter's start: the copy first on sys.path, an editable install's
# import redirect (scikit-build-core) removed so that it cannot take over, checks,
# then pytest with the given arguments.
BOOTSTRAP = r"""
import os, sys
pkg = os.environ["LOSSTOPO_EMULATION_PACKAGE"]
sys.path.insert(0, pkg)
sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
import losstopo
import losstopo._native  # OpenBLAS, then _core: as the package imports its modules
import losstopo._core_cuda as cuda
here = os.path.join(pkg, "losstopo")
for mod in (losstopo, cuda):
    if os.path.dirname(os.path.abspath(mod.__file__)) != here:
        sys.exit(f"run.py: {mod.__name__} was imported from {mod.__file__}, not from {here}")
if getattr(cuda, "EMULATED", False) is not True:
    sys.exit("run.py: losstopo._core_cuda is not the emulated module")
if not losstopo.cuda_available():
    sys.exit("run.py: losstopo.cuda_available() is False with the emulated module")
print(f"run.py: losstopo {losstopo.__version__} from {here}, _core_cuda EMULATED")
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""

INTERNALS = re.compile(rb"__pybind11_internals_v[0-9]+[A-Za-z0-9_]*__")


def log(msg: str) -> None:
    print(f"run.py: {msg}", flush=True)


def pybind11_internals(path: str) -> set:
    with open(path, "rb") as f:
        return set(INTERNALS.findall(f.read()))


def locate() -> dict:
    out = subprocess.run([sys.executable, "-c", LOCATE], check=True, stdout=subprocess.PIPE,
                         text=True, cwd=ROOT).stdout
    info = json.loads(out.strip().splitlines()[-1])
    if not info["cmake_dir"]:
        raise SystemExit("run.py: the installed losstopo has no CMake package (losstopo --cmake-dir)")
    if not info["pybind11_dir"]:
        raise SystemExit(f"run.py: no pybind11 in {sys.executable}'s environment: pip install "
                         "pybind11 (the version the installed losstopo was built with)")
    return info


def build(info: dict, build_dir: str, jobs: int) -> str:
    subprocess.run(["cmake", "-S", HERE, "-B", build_dir, f"-DPython_EXECUTABLE={sys.executable}",
                    f"-Dlosstopo_DIR={info['cmake_dir']}",
                    f"-Dpybind11_DIR={info['pybind11_dir']}"], check=True)
    subprocess.run(["cmake", "--build", build_dir, "--parallel", str(jobs)], check=True)
    mods = glob.glob(os.path.join(build_dir, "_core_cuda*.so")) + glob.glob(
        os.path.join(build_dir, "_core_cuda*.pyd"))
    if len(mods) != 1:
        raise SystemExit(f"run.py: expected one _core_cuda module in {build_dir}, found {mods}")
    # Both modules must share pybind11's internals, or the engine classes of _core
    # are unknown to the emulated module (same pybind11 version and compiler ABI).
    a, b = pybind11_internals(info["core"]), pybind11_internals(mods[0])
    if a != b:
        raise SystemExit(f"run.py: pybind11 differs: the installed _core uses {sorted(a)}, the "
                         f"emulated module {sorted(b)}; install the pybind11 the package was "
                         "built with")
    return mods[0]


def package_copy(info: dict, module: str, build_dir: str) -> str:
    root = os.path.join(build_dir, "package")
    dest = os.path.join(root, "losstopo")
    shutil.rmtree(root, ignore_errors=True)
    # Python files and the compiled core; not the C++ package (include/, lib/) and
    # not a real CUDA module.
    shutil.copytree(info["package"], dest, ignore=shutil.ignore_patterns(
        "_core_cuda*", "__pycache__", "include", "lib"))
    core = os.path.join(dest, os.path.basename(info["core"]))
    if not os.path.exists(core):  # an editable install keeps _core in its build folder
        shutil.copy2(info["core"], core)
    shutil.copy2(module, os.path.join(dest, os.path.basename(module)))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "cuda-emulation"))
    ap.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    ap.add_argument("--tests", nargs="*", default=["tests/test_cuda.py"],
                    help="the test files (default tests/test_cuda.py)")
    args, pytest_args = ap.parse_known_args(argv)  # the rest goes to pytest
    build_dir = os.path.abspath(args.build_dir)
    t0 = time.monotonic()
    info = locate()
    log(f"installed losstopo: {info['package']}")
    if os.path.commonpath([build_dir, info["package"]]) == info["package"]:
        raise SystemExit("run.py: the build folder must not be inside the installed package")
    module = build(info, build_dir, args.jobs)
    t1 = time.monotonic()
    pkg = package_copy(info, module, build_dir)
    log(f"emulated module built in {t1 - t0:.0f} s: {module}; package copy in {pkg}")
    env = dict(os.environ, LOSSTOPO_EMULATION_PACKAGE=pkg,
               PYTHONPATH=os.pathsep.join(p for p in (pkg, os.environ.get("PYTHONPATH")) if p))
    rc = subprocess.run([sys.executable, "-c", BOOTSTRAP] + args.tests + pytest_args, env=env,
                        cwd=ROOT, check=False).returncode
    log(f"tests against the emulation: exit code {rc} in {time.monotonic() - t1:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
