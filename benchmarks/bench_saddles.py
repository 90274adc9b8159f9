"""The cost of a certified barrier against the paper's fixed-budget path, on FCP pairs.

    python benchmarks/bench_saddles.py [--n 10000] [--sgd-epochs 10] [--quick]
        [--tolerances 1e-3,1e-4,1e-5] [--budgets 100,400,1600] [--no-append]

For one pair of L-BFGS-GSS minima (200 iterations, the medium preset's) and one pair
of SGD solutions (their best training-loss snapshots), both trained here on the first
--n MNIST images (synthetic pixels when MNIST is not cached): the paper's path (M =
50, 10 sine modes, lambda = 1e-4, Adam lr 1e-3) after 100, 400 and 1,600 steps (one
optimization, read at each budget), against ``losstopo.certify`` from the straight
line (the curve refined by L-BFGS, then the band, the saddle search and its checks
where a barrier remains; SGD's endpoints are not minima, so theirs is a refined
bound), at each of the --tolerances: barrier_tol as that fraction of the straight
line's barrier above its higher endpoint (certify's default is
losstopo.saddles.BARRIER_TOL; a tighter one costs more and reaches lower). Costs are
in units of one batched loss+gradient of the path's 50 points, timed in the same
process, and in those units counted from the evaluations, in all and phase by phase
(``Certificate.evaluations["phases"]``: where certify's cost goes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402
from losstopo.convergence import path_convergence  # noqa: E402
from losstopo.saddles import BARRIER_TOL  # noqa: E402

BUDGETS = (100, 400, 1600)


def unit_seconds(ls, theta, M: int = 50) -> float:
    """One batched loss+gradient of M points (the median of 3)."""
    X = np.repeat(theta[None], M, axis=0)
    X += 1e-3 * np.random.default_rng(0).standard_normal(X.shape).astype(X.dtype)
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        ls.loss_and_grad(X)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--sgd-epochs", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tolerances", default="1e-3,1e-4,1e-5",
                   help="barrier_tol as fractions of the straight line's barrier")
    p.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS),
                   help="Adam step budgets to compare against (empty: none)")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    fractions = [float(f) for f in a.tolerances.split(",")]
    budgets = tuple(int(b) for b in a.budgets.split(",") if b.strip())
    iters = 200
    if a.quick:
        a.n, a.sgd_epochs, budgets, iters = 1000, 2, (10, 40, 160), 50
    X, y, source = common.mnist_like(a.n)
    ls = losstopo.Landscape(losstopo.fcp(), X, y)
    sols = {}
    for method, epochs in (("lbfgs", iters), ("sgd", a.sgd_epochs)):
        t = time.perf_counter()
        sols[method] = losstopo.train(ls.net, ls, method=method, runs=2, epochs=epochs,
                                      seed=0, progress=False).theta_best_train
        print(f"{method}: trained in {time.perf_counter() - t:.0f} s", flush=True)
    unit = unit_seconds(ls, sols["lbfgs"][0])
    rows = []
    for method, th in sols.items():
        a_, b_ = th[0], th[1]
        E, G = ls.loss_and_grad(th)
        g, top = np.linalg.norm(G, axis=1), float(np.max(E))
        t = time.perf_counter()
        conv = (path_convergence(ls, a_[None], b_[None], steps=budgets, reference=False)
                if budgets else None)
        adam = time.perf_counter() - t
        name = {"lbfgs": "L-BFGS-GSS minima", "sgd": "SGD solutions"}[method]
        head = f"{name} (|g| {g.max():.1e}, higher endpoint loss {top:.4g})"
        for i, k in enumerate(budgets):
            sec = adam * k / budgets[-1]
            h = conv["barrier_refined"][0, i]
            rows.append([head, f"Adam, {k} steps", f"{h:.4g}", f"{h - top:.3g}",
                         "bound (fixed budget)", f"{sec:.1f} s", f"{sec / unit:.0f}", "-", "-"])
        t_line = np.linspace(0.0, 1.0, 50)[:, None]
        line = ls.loss((1 - t_line) * a_ + t_line * b_)
        rise = float(np.max(line)) - float(max(E[0], E[1]))
        for frac in fractions:
            t = time.perf_counter()
            c = losstopo.certify(ls, (a_, b_), n_images=50, endpoints="bound",
                                 barrier_tol=max(frac * rise, 1e-12))
            sec = time.perf_counter() - t
            ev = c.evaluations
            counted = (ev["gradients"] + 2 * ev["hessian_vector"]) / 50
            what = c.status + (f" ({c.reason.split(':')[0]})" if c.reason else "")
            phases = ", ".join(
                f"{k} {(v['gradients'] + 2 * v['hessian_vector']) / 50:.0f}"
                for k, v in ev["phases"].items() if v["gradients"] or v["hessian_vector"])
            rows.append([head, f"certify, barrier_tol {frac:g} x {rise:.3g}", f"{c.barrier:.4g}",
                         f"{c.barrier_rel:.3g}", what, f"{sec:.1f} s", f"{sec / unit:.0f}",
                         f"{counted:.0f}", phases])
            print(rows[-1], flush=True)
    table = common.markdown_table(
        ["pair", "method", "barrier H (refined)", "H - higher endpoint", "what it is", "time",
         "cost (batched loss+grad of 50 points, timed)", "cost (counted: gradient points / 50, a "
         "Hessian-vector product as 2)", "counted cost by phase"], rows)
    body = (f"Data: {source}, N = {len(X)}, FCP (ReLU), float32. One batched loss+gradient "
            f"of 50 points: {unit * 1e3:.0f} ms. L-BFGS-GSS {iters} iterations, SGD "
            f"{a.sgd_epochs} epochs (lr 0.1, batch 64), 2 runs each, one pair each. Path: M = "
            "50, 10 sine modes, lambda = 1e-4, Adam lr 1e-3; the budgets from one "
            "optimization, their times pro rata. certify: from the straight line, "
            "defaults (curve L-BFGS 100 iterations, band of 50 images) but barrier_tol, "
            "given as a fraction of the straight line's barrier above its higher endpoint "
            f"({BARRIER_TOL:g}: the default).\n\n" + table)
    print(body)
    if not a.no_append and not a.quick:
        common.append_results("bench_saddles: a certified barrier against the paper's "
                              "fixed budget", body)


if __name__ == "__main__":
    main()
