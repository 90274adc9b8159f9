"""The public names the README documents resolve after a bare ``import losstopo``, and
arguments are named as the caller wrote them."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import losstopo

README = Path(__file__).resolve().parents[1] / "README.md"
# Dotted names in the README that are files or C++ targets, not Python attributes.
NOT_ATTRIBUTES = {"losstopo.hpp"}


def documented_names() -> list:
    text = README.read_text()
    names = set(re.findall(r"(?<![\w/.])losstopo(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text))
    # Private parts (losstopo._core) are compiled modules to import, not attributes of
    # the package; test_compiled_modules_import checks those.
    return sorted(n for n in names if n not in NOT_ATTRIBUTES
                  and not any(p.startswith("_") for p in n.split(".")[1:]))


def test_compiled_modules_import():
    import importlib

    core = importlib.import_module("losstopo._core")
    assert hasattr(core, "ObjectiveF32")


def test_readme_names_are_found():
    names = documented_names()
    # The README writes modules and functions both ways; a regex that finds nothing
    # would make the next test vacuous.
    for expected in ("losstopo.align.align", "losstopo.convergence.path_convergence",
                     "losstopo.analytic.toy_gaussians", "losstopo.torch_adapter.lenet",
                     "losstopo.fcp"):
        assert expected in names


def test_every_readme_name_resolves_after_bare_import():
    # A fresh interpreter: nothing else has imported a submodule before the lookup.
    code = (
        "import losstopo, sys\n"
        "missing = []\n"
        "for dotted in sys.argv[1:]:\n"
        "    obj = losstopo\n"
        "    try:\n"
        "        for part in dotted.split('.')[1:]:\n"
        "            obj = getattr(obj, part)\n"
        "    except AttributeError as e:\n"
        "        missing.append(f'{dotted}: {e}')\n"
        "print('\\n'.join(missing))\n"
        "sys.exit(1 if missing else 0)\n"
    )
    names = documented_names()
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        losstopo.nonexistent  # noqa: B018


def test_hessian_names_the_callers_argument():
    net = losstopo.MLP([3, 4, 2], activation="tanh", bias=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=20)
    ls = losstopo.Landscape(net, X, y)
    theta = rng.normal(size=ls.num_params) * 0.3
    with pytest.raises(ValueError, match="trace_probes"):
        losstopo.hessian(ls, theta, trace_probes=1)
    with pytest.raises(ValueError, match="top_k"):
        losstopo.hessian(ls, theta, top_k=0)
    with pytest.raises(ValueError, match="density_steps"):
        losstopo.hessian(ls, theta, density_probes=2, density_steps=1)


def test_fcp_activation():
    assert losstopo.fcp().activations == ["relu", "relu"]  # the paper's text, the default
    soft = losstopo.fcp("softplus")
    assert soft.activations == ["softplus", "softplus"] and soft.num_params == 42_200


def test_no_module_imports_anothers_private_names():
    # Shared helpers are public names of their modules (paths.choose_pairs, ...);
    # the private modules (_checks, _io, _native) are the package's shared plumbing.
    import ast

    root = Path(losstopo.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
                private = [a.name for a in node.names
                           if a.name.startswith("_") and a.name != "__version__"]
                if private:
                    offenders.append(f"{path.relative_to(root)}: {node.module} {private}")
    assert not offenders, "\n".join(offenders)


def test_nothing_in_the_library_imports_the_study():
    # The study sits on the library; of the modules outside losstopo/study/ only the
    # command line reaches into it.
    import ast

    root = Path(losstopo.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):  # from .study... / from . import study
                names = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "study" or n.startswith("study.") or n.startswith("losstopo.study")
                   for n in names):
                offenders.append(path.name)
    assert not offenders, offenders


def test_the_study_modules_do_not_import_each_other_in_a_cycle(tmp_path):
    # Each of the study's modules imports on its own in a fresh interpreter.
    import subprocess
    import sys

    for mod in ("report", "estimate", "runner", "files", "folder", "config", "layout",
                "results", "settings", "stages", "stages.plot"):
        r = subprocess.run([sys.executable, "-c", f"import losstopo.study.{mod}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, (mod, r.stderr[-500:])
