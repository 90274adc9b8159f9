"""The map's paths: stochastic Adam steps against the paper's full-batch 100 steps.

    python benchmarks/bench_map_paths.py --study DIR [--minima 12] [--pairs 3]
        [--settings all:100,1000:100,1000:200,500:200,1000:400] [--no-append]

A map of minima needs a path for every edge of its spanning tree (n - 1 pairs for n
minima), so its edges are where the study's path cost multiplies. On a finished study
(DIR: its sets.npz and manifest.json; the medium preset's for the map's defaults) this
takes the first --minima solutions of each training set, the --pairs shortest edges of
their spanning tree (the pairs a map measures first), and finds each pair's path at
every setting SAMPLES:STEPS (SAMPLES drawn per step, "all" for full batch; the study's
other path settings), all measured on the whole training set. It reports the time per
pair and each pair's refined barrier against the full-batch 100 steps' (the paper's),
timed in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from losstopo.paths import barrier_matrix  # noqa: E402
from losstopo.study.config import study_data, study_landscapes  # noqa: E402
from losstopo.topography import spanning_pairs  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--study", required=True, help="a finished study's folder")
    p.add_argument("--minima", type=int, default=12)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--settings", default="all:100,1000:100,1000:200,500:200,1000:400")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    settings = []
    for item in a.settings.split(","):
        samples, steps = item.split(":")
        settings.append((None if samples == "all" else int(samples), int(steps)))
    cfg = json.load(open(os.path.join(a.study, "manifest.json")))["config"]
    train_ls, _ = study_landscapes(cfg, study_data(cfg, progress=False))
    sets = np.load(os.path.join(a.study, "sets.npz"))
    base = dict(n_points=cfg["n_points"], n_modes=cfg["n_modes"], lam=cfg["lam"],
                lr=cfg["path_lr"], curve=cfg["curve"], refine=True, chunk=4, progress=False)
    rows = []
    for name in ("SGD_train", "LBFGS_train"):
        X = sets[name][: a.minima]
        P = spanning_pairs(X)[: a.pairs]
        ref = None
        for samples, steps in settings:
            kw = dict(steps=steps)
            if samples is not None and samples < train_ls.num_samples:
                kw["batch_size"] = samples
            t = time.perf_counter()
            r = barrier_matrix(train_ls, X, pairs=P, **base, **kw)
            sec = (time.perf_counter() - t) / len(P)
            H = r["barrier_refined"]
            if ref is None:
                ref = (sec, H)
            rows.append([name.replace("_", "-"), f"{samples or 'all'} x {steps}",
                         f"{sec:.2f} s", f"{sec / ref[0]:.2f}",
                         " / ".join(f"{h:.4g}" for h in H),
                         f"{np.median(H / ref[1]):.2f}"])
            print(rows[-1], flush=True)
    table = common.markdown_table(
        ["set", "samples per step x steps", "time per pair", "time / first setting's",
         "refined barrier H per pair", "median H / first setting's"], rows)
    body = (f"Study: {cfg['network']}, preset {cfg.get('preset', '?')}, "
            f"{train_ls.num_samples} training samples; the first {a.minima} solutions of "
            f"each training set, the {a.pairs} shortest edges of their spanning tree. Paths: "
            f"M = {cfg['n_points']}, {cfg['n_modes']} modes, lambda = {cfg['lam']}, Adam lr "
            f"{cfg['path_lr']}; every barrier measured on all training samples (refined).\n\n"
            + table)
    print(body)
    if not a.no_append:
        common.append_results("bench_map_paths: the map's paths, stochastic steps against "
                              "the paper's full batch", body)


if __name__ == "__main__":
    main()
