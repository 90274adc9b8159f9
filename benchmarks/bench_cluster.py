"""The path stage on a Dask cluster against one process, on this machine: pairs per
second with one process of all cores, and with local:W worker processes of
cores / W threads each (the same pairs, the same numbers); the bytes each worker
receives; then the paper preset's projected time (losstopo reproduce --estimate) for
1, 16 and 64 workers like this machine.

    python benchmarks/bench_cluster.py [--n 10000] [--pairs 16] [--steps 20] [--workers 2]
        [--no-estimate] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402
from losstopo.study import estimate  # noqa: E402
from losstopo.cluster import Cluster  # noqa: E402
from losstopo.study import make_config, study_data, study_landscapes  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-estimate", action="store_true")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    cores = os.cpu_count() or 1
    data = losstopo.datasets.mnist()
    X, y = data.train[0][: a.n], data.train[1][: a.n]
    net = losstopo.fcp()
    ls = losstopo.Landscape(net, X, y)  # all cores here; workers use theirs
    th = net.init(8, seed=0)
    kw = dict(pairs=a.pairs, n_points=50, n_modes=10, steps=a.steps, progress=False, chunk=4)
    t = time.perf_counter()
    losstopo.barrier_matrix(ls, th, **kw)
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    with Cluster(f"local:{a.workers}") as c:
        t_start = time.perf_counter() - t
        t = time.perf_counter()
        ls.threads = max(1, cores // a.workers)  # the same threads per engine as the workers
        ref = losstopo.barrier_matrix(ls, th, **kw)
        t_ref = time.perf_counter() - t
        ls.threads = None
        t = time.perf_counter()
        got = losstopo.barrier_matrix(ls, th, client=c.client, **kw)
        t_many = time.perf_counter() - t
    same = all(np.array_equal(ref[k], got[k]) for k in ("barrier", "losses"))
    sent = len(pickle.dumps(ls)) + th.nbytes
    rows = [
        [f"1 process x {cores} threads", f"{t_one:.1f} s", f"{a.pairs / t_one:.3f}", "1.00x", "-"],
        [f"1 process x {max(1, cores // a.workers)} thread(s)", f"{t_ref:.1f} s",
         f"{a.pairs / t_ref:.3f}", f"{t_one / t_ref:.2f}x", "-"],
        [f"local:{a.workers} x {max(1, cores // a.workers)} thread(s)", f"{t_many:.1f} s",
         f"{a.pairs / t_many:.3f}", f"{t_one / t_many:.2f}x",
         f"{sent / 1e6:.1f} MB per worker, once"],
    ]
    table = common.markdown_table(["path stage", "time", "pairs/s", "throughput vs 1 process",
                                   "data sent"], rows)
    text = [f"## bench_cluster: the path stage on a local Dask cluster "
            f"({time.strftime('%Y-%m-%d %H:%M')})", "",
            f"Machine: {common.machine()}  ", f"Software: {common.versions()}", "",
            f"FCP, MNIST N = {a.n}, float32; {a.pairs} pairs of 8 solutions in chunks of 4, "
            f"M = 50, 10 modes, {a.steps} Adam steps. Cluster start-up {t_start:.1f} s (not "
            f"counted). The cluster's numbers equal the one-process run with the workers' "
            f"threads per engine: {'bitwise' if same else 'NOT bitwise'}.", "", table, ""]
    if not a.no_estimate:
        cfg = make_config("fcp", "paper", data="mnist")
        tr, te = study_landscapes(cfg, study_data(cfg, progress=False))
        cal = estimate.calibrate(cfg, tr, te, progress=True)
        text += ["Projected paper preset (`losstopo reproduce --preset paper --estimate`; "
                 "with `--train-group 16` training also spreads):", "",
                 estimate.report(cfg, cal).rstrip(), "",
                 estimate.report(dict(cfg, train_group=16), cal).split("\n\n")[0], ""]
    out = "\n".join(text)
    print(out)
    if not a.no_append:
        with open(common.RESULTS, "a") as f:
            f.write("\n" + out)


if __name__ == "__main__":
    main()
