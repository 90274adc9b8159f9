"""Wall-clock timing: best of several runs, one timed call, and numpy's GEMM rate."""

from __future__ import annotations

import time

import numpy as np


def best_time(fn, repeat=3, warmup=1):
    """Best wall-clock time of ``fn()`` in seconds over ``repeat`` runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def timed(fn):
    """``(seconds, fn())`` for one call."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def gemm_ceiling(dtype=np.float32, n=3072, repeat=3) -> float:
    """numpy's large square GEMM throughput in GFLOP/s: the machine's practical ceiling."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    t = best_time(lambda: a @ b, repeat=repeat)
    return 2.0 * n**3 / t / 1e9
