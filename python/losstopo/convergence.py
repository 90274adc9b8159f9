"""Does a path's step budget converge its barrier? The barriers of the same paths
after several numbers of Adam steps, from one optimization, beside the minimax
objective's barrier as the converged reference."""

from __future__ import annotations

import numpy as np

from ._checks import check_int
from .paths import (FIND_PATH_DEFAULTS, check_endpoint, landscape_kind, make_path_batch,
                    measure_grid, path_params, path_results)
from .progress import Progress

STEPS = (25, 50, 100, 200, 400)  # the budgets compared (the paper's is 100)


def path_convergence(landscape, A, B, steps=STEPS, reference: bool = True,
                     progress: bool = False, **find_path_kwargs) -> dict:
    """Barriers of the paths A[r] -> B[r] after each number of steps in ``steps``.

    One optimization of ``max(steps)`` steps per path (all pairs in one core batch);
    after k steps each path is the one :func:`find_path` with ``steps=k`` returns
    (the best seen so far by summed energy), measured on the same grid and refined.
    With ``reference``, the same pairs are also optimized for ``max(steps)`` steps
    with the minimax objective, which aims the highest point at the saddle: its
    refined barrier is the converged reference.

    Returns a dict of arrays: ``steps`` (S,), ``barrier`` and ``barrier_refined``
    (R, S), ``straight_barrier`` (R,), and ``reference`` (R,) (NaN without it).
    """
    steps = sorted({check_int("steps", k) for k in np.atleast_1d(steps).tolist()})
    if not steps:
        raise ValueError("steps: expected at least one number of steps")
    kw = {**FIND_PATH_DEFAULTS, **find_path_kwargs}
    unknown = set(find_path_kwargs) - set(FIND_PATH_DEFAULTS)
    if unknown:
        raise TypeError(f"path_convergence: unknown argument(s) {sorted(unknown)}")
    if kw["align"]:
        raise ValueError("path_convergence: align the endpoints first (losstopo.align)")
    if kw["optimizer"] != "adam" or kw["batch_size"] is not None:
        raise ValueError("path_convergence: full-batch Adam steps only (the paper's)")
    dtype, D, _ = landscape_kind(landscape)
    A, B = np.atleast_2d(A), np.atleast_2d(B)
    if A.shape != B.shape:
        raise ValueError(f"A, B: expected the same shape, got {A.shape} and {B.shape}")
    A = np.stack([check_endpoint(f"A[{r}]", a, D, dtype) for r, a in enumerate(A)])
    B = np.stack([check_endpoint(f"B[{r}]", b, A.shape[1], dtype) for r, b in enumerate(B)])

    def params(objective, n):
        return path_params(kw["n_modes"], kw["n_points"], kw["lam"], "adam", kw["lr"], n,
                           objective, kw["temperature"], kw["line_search"], curve=kw["curve"])

    if kw["init_scale"]:
        raise ValueError("path_convergence: paths start from the straight line (init_scale 0)")
    last = steps[-1]
    p = params(kw["objective"], last)
    pb = make_path_batch(landscape, A, B, p, kw["seed"])
    # After step k + 1 the best path covers the evaluations of steps 0..k: the path
    # find_path(steps=k) returns. The last budget is read after the final evaluation.
    snaps = {}
    bar = Progress(last + (last if reference else 0), desc="convergence", enabled=progress)

    def on_step(s):
        bar.set(s)
        if s - 1 in steps:
            snaps[s - 1] = pb.best_coeffs
        return True

    try:
        pb.optimize(on_step)
        snaps[last] = pb.best_coeffs
        grid = measure_grid(landscape)
        R = len(A)
        out = dict(steps=np.array(steps), barrier=np.full((R, len(steps)), np.nan),
                   barrier_refined=np.full((R, len(steps)), np.nan),
                   straight_barrier=np.full(R, np.nan), reference=np.full(R, np.nan))
        for i, k in enumerate(steps):
            for r, res in enumerate(path_results(pb, snaps[k], pb.history, p, True, 0, grid)):
                out["barrier"][r, i] = res.barrier
                out["barrier_refined"][r, i] = res.barrier_refined
                out["straight_barrier"][r] = res.straight_barrier
        if reference:
            pm = params("minimax", last)
            pr = make_path_batch(landscape, A, B, pm, kw["seed"])
            pr.optimize(lambda s: bar.set(last + s) or True)
            for r, res in enumerate(path_results(pr, pr.best_coeffs, pr.history, pm, True, 0,
                                                 grid)):
                out["reference"][r] = res.barrier_refined
    finally:
        bar.close()
    return out
