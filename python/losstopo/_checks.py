"""Argument checks shared by the Python layer."""

from __future__ import annotations

import operator
from typing import Optional

import numpy as np


def check_int(name: str, value, minimum: int = 1, maximum: Optional[int] = None,
              allow_none: bool = False) -> Optional[int]:
    """``value`` as an int in [minimum, maximum]; a ValueError naming ``name`` otherwise.

    Booleans are refused; numpy integers are accepted. With ``allow_none``, None passes.
    """
    if value is None and allow_none:
        return None
    ok = not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            value = operator.index(value)
        except TypeError:
            ok = False
    if not ok or value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name}: expected an int {bound}{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


def check_point(landscape, theta, name: str = "theta") -> np.ndarray:
    """One parameter vector of ``landscape`` as a float64 array (D,); a ValueError
    naming ``name`` for another shape or a NaN or Inf."""
    t = np.asarray(theta, dtype=np.float64)
    D = int(landscape.num_params)
    if t.shape != (D,):
        raise ValueError(f"{name}: expected shape ({D},), got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return t


def check_samples(samples, n: int):
    """A sample list of a landscape of ``n`` samples as int64 (None passes): a
    non-empty 1-D integer array (not booleans, not floats) of indices in [0, n)."""
    if samples is None:
        return None
    s = np.asarray(samples)
    if s.dtype.kind not in "iu" or s.ndim != 1 or s.size == 0:
        raise ValueError("samples: expected a non-empty 1-D integer index array")
    if s.min() < 0 or s.max() >= n:
        raise ValueError(f"samples: indices must lie in [0, {n})")
    return np.ascontiguousarray(s, dtype=np.int64)


def check_labels(y, n: int, classes: int) -> np.ndarray:
    """Class labels of ``n`` samples as int32: integers (not booleans) of shape (n,)
    in [0, classes)."""
    if y is None:
        raise ValueError("y: cross_entropy needs integer labels")
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.dtype == np.bool_:
        raise TypeError(f"y: labels must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y: expected shape ({n},), got {y.shape}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise ValueError(f"y: labels must lie in [0, {classes}), found range [{lo}, {hi}]")
    return np.ascontiguousarray(y, dtype=np.int32)


def check_real(name: str, a, dtype) -> np.ndarray:
    """``a`` as a contiguous array of ``dtype``: real numbers (not complex, not
    booleans), non-empty, finite."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name}: empty array")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return a
