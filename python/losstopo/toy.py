"""The paper's 2-D check (its Fig. 3) on the toy landscape: paths at the stretching
penalties lambda = 10, 100 and 1000, how far each loops back on itself, and whether
the penalty or the number of sine modes removes the loops; and the three path
objectives side by side."""

from __future__ import annotations

import time

import numpy as np

from .analytic import toy_gaussians
from .paths import find_path

LAMBDAS = (10.0, 100.0, 1000.0)
PAPER_BARRIERS = {10.0: 0.646, 100.0: 0.640, 1000.0: 0.652}  # the paper's Fig. 3
# The paper's M = 100 points; Adam at the authors' toy notebook's lr 0.01 for 300
# steps (at the network setting, lr 1e-3 for 100 steps, the 2-D path is far from
# converged). Few modes: the comparison that tells the modes from the penalty.
SETTINGS = dict(n_points=100, n_modes=10, lr=0.01, steps=300)
FEW_MODES = 3
WELL_RADIUS = 0.1  # a point "in a well" lies this close to one of the two minima


def _summary(landscape, r) -> dict:
    P = r.path.at(r.t)
    near = sum(int((np.linalg.norm(P - m, axis=1) < WELL_RADIUS).sum())
               for m in landscape.minima)
    return dict(barrier=float(r.barrier), barrier_refined=float(r.barrier_refined),
                length=float(r.length), backtracking=float(r.path.backtracking()),
                in_wells=near / len(P))


def lambda_paths():
    """(paths, summary): paths maps lambda -> PathResult (``SETTINGS``); summary maps
    str(lambda) -> the barrier, the length, the fraction of the length that runs
    backwards, the fraction of the M points in the wells, the same with
    ``FEW_MODES`` modes (``few_modes``), and the paper's barrier."""
    toy = toy_gaussians()
    paths, summary = {}, {}
    for lam in LAMBDAS:
        r = find_path(toy, *toy.endpoints, lam=lam, progress=False, **SETTINGS)
        few = find_path(toy, *toy.endpoints, lam=lam, progress=False,
                        **dict(SETTINGS, n_modes=FEW_MODES))
        paths[lam] = r
        summary[f"{lam:g}"] = dict(_summary(toy, r), paper=PAPER_BARRIERS[lam],
                                   few_modes=_summary(toy, few))
    return paths, summary


def objective_paths() -> dict:
    """The paper's sum objective, the authors' notebook's sum of squares and our
    minimax at lambda = 10: label -> PathResult."""
    toy = toy_gaussians()
    return {
        "sum (paper)": find_path(toy, *toy.endpoints, n_points=100, lam=10.0,
                                 progress=False),
        "sum of squares (authors' notebook)": find_path(
            toy, *toy.endpoints, n_points=101, n_modes=15, lam=10.0, lr=0.01, steps=300,
            objective="sum_squares", progress=False),
        "minimax (ours)": find_path(toy, *toy.endpoints, n_points=100, lam=10.0, lr=0.01,
                                    steps=300, objective="minimax", progress=False),
    }


# The curve families compared, each with the same number of coefficient vectors,
# and Garipov et al.'s quadratic Bezier curve (one control point).
FAMILIES = (("fourier", 10), ("bezier", 10), ("polychain", 10), ("bezier", 1))


def curve_cases() -> dict:
    """The 2-D landscapes the curve families are compared on: {name: (landscape,
    known saddle value, path settings)}. The saddles are the ones losstopo.certify
    certifies (tests/test_saddles.py)."""
    from .analytic import muller_brown

    return {
        "toy": (toy_gaussians(), 0.62439, dict(n_points=100, lam=10.0, lr=0.01, steps=300)),
        "Muller-Brown x 0.01": (muller_brown(scale=0.01), -0.40665,
                                dict(n_points=60, lam=0.1, lr=0.02, steps=500)),
    }


def curve_families() -> dict:
    """The barrier each curve family finds on the toy landscape and on Muller-Brown
    (x 0.01), with the paper's sum objective and with minimax, beside the known
    saddle: {landscape: {"saddle": v, "settings": kw, "rows": [dict(curve, K,
    objective, barrier, seconds)]}}."""
    out = {}
    for name, (ls, saddle, kw) in curve_cases().items():
        rows = []
        for objective in ("sum", "minimax"):
            for curve, K in FAMILIES:
                t = time.perf_counter()
                r = find_path(ls, *ls.endpoints, curve=curve, n_modes=K, objective=objective,
                              progress=False, **kw)
                rows.append(dict(curve=curve, K=K, objective=objective,
                                 barrier=float(r.barrier_refined),
                                 seconds=time.perf_counter() - t))
        out[name] = dict(saddle=saddle, settings=kw, rows=rows)
    return out
