"""Loads the compiled core: OpenBLAS from scipy-openblas32 first, then ``_core``."""

from __future__ import annotations

import ctypes
import os
import sys


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
