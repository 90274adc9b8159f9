"""Barrier and cost per curve family (Fourier, Bezier, polygonal chain) on the toy
landscape, on Muller-Brown (against its known saddle) and on FCP pairs.

    python benchmarks/bench_curves.py [--sets FILE] [--n 10000] [--pairs 10]
        [--steps 100] [--quick] [--no-append]

Every family runs through the same batched path engine with the same number of
coefficient vectors K (the cost per step is the same by construction; the table
shows it), plus Garipov et al.'s quadratic Bezier curve (K = 1). The 2-D landscapes
run with the paper's sum objective and with minimax (which aims the highest point at
the saddle); the FCP pairs with the paper's settings (M = 50, lambda = 1e-4, Adam lr
1e-3, 100 steps). FCP solutions: the LBFGS-train set of a study's sets.npz
(--sets), else L-BFGS-GSS solutions trained here on the first --n MNIST images
(synthetic pixels when MNIST is not cached).
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
from losstopo.toy import FAMILIES, curve_families  # noqa: E402


def analytic_rows():
    """The toy and Muller-Brown comparison of losstopo.toy (the study's report runs
    the same cases), as table rows."""
    rows, settings = [], []
    for name, case in curve_families().items():
        saddle, kw = case["saddle"], case["settings"]
        settings.append(f"{name} M = {kw['n_points']}, lambda = {kw['lam']:g}, Adam lr "
                        f"{kw['lr']:g} x {kw['steps']} steps")
        base = {}
        for r in case["rows"]:
            dt = r["seconds"]
            base.setdefault(r["objective"], dt)
            rows.append([f"{name} (saddle {saddle})", r["curve"], str(r["K"]), r["objective"],
                         f"{r['barrier']:.4f}", f"{r['barrier'] - saddle:+.4f}",
                         f"{dt * 1e3:.0f} ms", f"{dt / base[r['objective']]:.2f}x"])
    return rows, "; ".join(settings)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sets", default=None)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.n, a.pairs, a.steps = 2000, 2, 10
    curve_families()  # warm-up: the first path of a process pays for loading
    rows, settings = analytic_rows()
    X, y, source = common.mnist_like(a.n)
    ls = losstopo.Landscape(losstopo.fcp(), X, y)
    if a.sets:
        th = np.load(a.sets)["LBFGS_train"]
        origin = f"the LBFGS-train set of {os.path.basename(a.sets)}"
        if th.shape[1] != ls.num_params:
            raise SystemExit(f"--sets: expected FCP solutions, got shape {th.shape}")
    else:
        th = losstopo.train(ls.net, ls, method="lbfgs", runs=6, epochs=100, seed=0,
                            progress=False).theta_best_train
        origin = "6 L-BFGS-GSS runs of 100 iterations trained here"
    idx = np.stack(np.triu_indices(len(th), 1), axis=1)
    pairs = idx[np.sort(np.random.default_rng(0).permutation(len(idx))[: a.pairs])]
    fcp_rows, base = [], None
    for curve, K in FAMILIES:
        t = time.perf_counter()
        res = losstopo.barrier_matrix(ls, th, pairs=pairs, curve=curve, n_modes=K,
                                      n_points=50, lam=1e-4, lr=1e-3, steps=a.steps,
                                      progress=False)
        dt = (time.perf_counter() - t) / len(pairs)
        base = dt if base is None else base
        fcp_rows.append([f"FCP, {len(pairs)} pairs", curve, str(K), "sum",
                         f"{np.median(res['barrier_refined']):.4g}",
                         f"straight {np.median(res['straight_barrier']):.4g}",
                         f"{dt:.2f} s", f"{dt / base:.2f}x"])
    table = common.markdown_table(
        ["landscape", "curve", "K", "objective", "barrier (refined; median)",
         "minus saddle / straight line", "time per path", "time vs fourier"], rows + fcp_rows)
    body = (f"2-D landscapes: {settings}. FCP: {source}, N = {len(X)}, "
            f"float32, solutions: {origin}; M = 50, lambda = 1e-4, Adam lr 1e-3 x {a.steps} "
            "steps.\n\n" + table)
    print(body)
    if not a.no_append and not a.quick:
        common.append_results("bench_curves: barrier and cost per curve family", body)


if __name__ == "__main__":
    main()
