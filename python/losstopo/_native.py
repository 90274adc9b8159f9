"""Loads the compiled core and picks an engine class by device and dtype.

OpenBLAS (from scipy-openblas32) is loaded before ``_core``; the CUDA module
``_core_cuda`` (built with the CUDA backend only) is imported on first use.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np


def _load_openblas() -> None:
    import scipy_openblas32

    name = {"win32": "libscipy_openblas.dll", "darwin": "libscipy_openblas.dylib"}.get(
        sys.platform, "libscipy_openblas.so"
    )
    path = os.path.join(scipy_openblas32.get_lib_dir(), name)
    if not os.path.exists(path):
        raise ImportError(f"losstopo: OpenBLAS library not found at {path}")
    ctypes.CDLL(path, mode=getattr(os, "RTLD_GLOBAL", 0))


_load_openblas()

from . import _core  # noqa: E402

core = _core


def cuda_module():
    """``losstopo._core_cuda``, or None when this build has no CUDA backend."""
    try:
        from . import _core_cuda
    except (ImportError, OSError):
        return None
    return _core_cuda


def engine_class(device: str, dtype) -> type:
    """The compiled engine for ``device`` ("cpu" or "cuda[:N]") and ``dtype``."""
    suffix = "F32" if np.dtype(dtype) == np.float32 else "F64"
    if device == "cpu":
        return getattr(core, "Landscape" + suffix)
    cuda = cuda_module()
    if cuda is None:
        raise RuntimeError(f"device={device!r}: this build of losstopo has no CUDA backend")
    return getattr(cuda, "CudaLandscape" + suffix)


def objective_class(dtype) -> type:
    """The base class of every compiled engine of ``dtype``."""
    return core.ObjectiveF32 if np.dtype(dtype) == np.float32 else core.ObjectiveF64


def for_dtype(name: str, dtype):
    """The core's ``name + F32`` or ``name + F64`` (classes and functions alike)."""
    return getattr(core, name + ("F32" if np.dtype(dtype) == np.float32 else "F64"))


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def engine_threads(threads=None) -> int:
    """The threads a CPU engine asked for ``threads`` runs with: that number, or
    OpenMP's default (its OMP_NUM_THREADS, else the cores this process may run on)."""
    if threads:
        return int(threads)
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return cores()


def arithmetic(threads=None) -> dict:
    """What a CPU engine's numbers depend on, beyond its inputs: its thread count, the
    instruction set of its vectorized loops and the BLAS kernels (equal records give
    bitwise equal numbers)."""
    return dict(threads=engine_threads(threads), **core.cpu_arithmetic())


def arithmetic_mismatch(recorded: dict, now: dict):
    """None when ``now`` computes as ``recorded`` did; else what differs and how to
    compute as recorded (the thread count to ask for; the environment variable that
    selects the instruction set or the BLAS kernels, where this machine has them)."""
    problems, ways = [], []
    for key, what in (("threads", "engine threads"), ("instruction_set", "instruction set"),
                      ("blas_kernels", "BLAS kernels")):
        if key in recorded and recorded[key] != now.get(key):
            problems.append(f"{what} {recorded[key]} (here {now.get(key)})")
            if key == "threads":
                ways.append(f"threads={recorded[key]} (--threads {recorded[key]})")
            elif key == "instruction_set":
                order = ("scalar", "avx2", "avx512")
                if (recorded[key] in order and now.get(key) in order
                        and order.index(recorded[key]) < order.index(now[key])):
                    ways.append(f"LOSSTOPO_SIMD={recorded[key]} in the environment")
                else:
                    ways.append(f"a machine with {recorded[key]}")
            else:
                ways.append(f"OPENBLAS_CORETYPE={recorded[key]} in the environment")
    if not problems:
        return None
    return (f"computed with {', '.join(problems)}, and the numbers depend on them; "
            f"resume with {' and '.join(ways)}")
