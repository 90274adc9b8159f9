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
