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
