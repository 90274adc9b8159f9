"""Stochastic path steps against full-batch steps on FCP (N = 50,000 MNIST): the
barrier each finds for the same pairs, and the time each takes.

    python benchmarks/bench_path_batch.py [--pairs 20] [--batch 5000] [--runs 8]
        [--iters 150] [--steps 100] [--cache FILE] [--quick] [--no-append]

L-BFGS-GSS solutions are trained first (cached in --cache, so a second run goes
straight to the paths); then the same pairs run with every step on all samples (the
paper's) and with --batch samples drawn per step. Every barrier is measured on all
samples. Times are the path optimization and measurement, in the same process.
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


def solutions(ls, runs, iters, cache):
    if cache and os.path.exists(cache):
        th = np.load(cache)["theta"]
        if th.shape == (runs, ls.num_params):
            return th
    ens = losstopo.train(ls.net, ls, method="lbfgs", runs=runs, epochs=iters, seed=0)
    th = ens.theta_best_train
    if cache:
        np.savez(cache, theta=th)
    return th


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--cache", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.pairs, a.runs, a.iters, a.steps, n = 3, 3, 20, 10, 10_000
        a.batch = min(a.batch, 1000)
    else:
        n = None
    data = losstopo.datasets.mnist()
    X, y = data.train if n is None else (data.train[0][:n], data.train[1][:n])
    ls = losstopo.Landscape(losstopo.fcp(), X, y)
    t0 = time.perf_counter()
    th = solutions(ls, a.runs, a.iters, a.cache)
    t_train = time.perf_counter() - t0
    idx = np.stack(np.triu_indices(len(th), 1), axis=1)
    pairs = idx[np.sort(np.random.default_rng(0).permutation(len(idx))[: a.pairs])]
    kw = dict(pairs=pairs, n_points=50, n_modes=10, lam=1e-4, lr=1e-3, steps=a.steps,
              seed=0, progress=True)
    out = {}
    for name, extra in (("full", {}), (f"B={a.batch}", dict(batch_size=a.batch))):
        t = time.perf_counter()
        out[name] = (losstopo.barrier_matrix(ls, th, **kw, **extra), time.perf_counter() - t)
    (full, t_full), (sto, t_sto) = out.values()
    d = sto["barrier"] - full["barrier"]
    rel = d / full["barrier"]
    rows = [
        ["full batch (paper)", f"{np.median(full['barrier']):.4g}",
         f"{np.median(full['barrier_rel']):.4g}", f"{t_full:.0f} s", "1.00x"],
        [f"{a.batch} samples per step", f"{np.median(sto['barrier']):.4g}",
         f"{np.median(sto['barrier_rel']):.4g}", f"{t_sto:.0f} s", f"{t_sto / t_full:.2f}x"],
    ]
    table = common.markdown_table(
        ["steps", "median barrier H", "median H - max endpoint", "time (paths)",
         "time vs full"], rows)
    stats = (f"Per pair, stochastic minus full barrier: median {np.median(d):+.4g} "
             f"({100 * np.median(rel):+.2f}%), range [{d.min():+.4g}, {d.max():+.4g}], "
             f"|relative| at most {100 * np.abs(rel).max():.2f}%; stochastic lower in "
             f"{int((d < 0).sum())} of {len(d)} pairs. Straight-line barrier median "
             f"{np.median(full['straight_barrier']):.4g}.")
    text = "\n".join([
        f"## bench_path_batch: stochastic path steps ({time.strftime('%Y-%m-%d %H:%M')})", "",
        f"Machine: {common.machine()}  ",
        f"Software: {common.versions()}", "",
        f"FCP, MNIST, N = {len(X)}, float32; {len(th)} L-BFGS-GSS solutions ({a.iters} "
        f"iterations, trained in {t_train:.0f} s); {len(pairs)} pairs; M = 50, 10 modes, "
        f"lambda = 1e-4, Adam lr 1e-3, {a.steps} steps; barriers measured on all samples.",
        "", table, "", stats, ""])
    print(text)
    if not a.no_append and not a.quick:
        with open(common.RESULTS, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
