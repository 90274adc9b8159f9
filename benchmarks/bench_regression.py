"""This build against another installed losstopo (e.g. the previous release), through
the public API, in one run: the two interpreters take turns case by case, so both see
the same machine state, and each cell is the best of its rounds.

    python benchmarks/bench_regression.py --baseline /path/to/other/venv/bin/python \
        [--baseline-name NAME] [--rounds 2] [--quick] [--no-append]

Cases (FCP, float32, all cores): one batched loss+grad of 50 vectors; one L-BFGS-GSS
iteration (minimize on the landscape); one SGD epoch of 16 runs; one FourierPathFinder
Adam step (M = 50, 10 modes); the measurement of a finished path (grid, straight line,
refined maxima, errors); barrier_matrix over 2 pairs (10 steps each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

CASE = r"""
import json, sys, time
import numpy as np
import losstopo
case, n = sys.argv[1], int(sys.argv[2])
d = losstopo.datasets.mnist(progress=False)
X, y = d.train[0][:n], d.train[1][:n]
net = losstopo.fcp()
ls = losstopo.Landscape(net, X, y)
theta = net.init(50, seed=0)
a, b = theta[0], theta[1]

def best(fn, repeat=2):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)

if case == "loss_grad":
    t = best(lambda: ls.loss_and_grad(theta))
elif case == "loss_grad_1":
    t = best(lambda: ls.loss_and_grad(theta[0]), 3)
elif case == "lbfgs_iteration":
    it = 20
    t = best(lambda: losstopo.minimize(ls, theta[0], max_iter=it, gtol=0.0), 2) / it
elif case == "sgd_epoch":
    t = best(lambda: losstopo.train(net, ls, method="sgd", runs=16, epochs=1,
                                    progress=False), 1)
elif case == "path_step":  # the core's optimizer alone (its API differs across builds)
    from losstopo._native import core
    def optimize(n):
        p = dict(n_modes=10, n_points=50, steps=n)
        if hasattr(core, "PathParams"):
            pb = core.PathBatchF32(ls.engine, a[None], b[None], core.PathParams(**p))
        else:
            pb = core.PathBatchF32(ls._engine, a[None], b[None], p)
        t0 = time.perf_counter(); pb.optimize(); return time.perf_counter() - t0
    steps = 5
    t = (best(lambda: optimize(steps), 2) - best(lambda: optimize(0), 2)) / steps
elif case == "path_measure":
    t = best(lambda: losstopo.find_path(ls, a, b, steps=0, refine=True, progress=False), 1)
elif case == "barrier_matrix":
    t = best(lambda: losstopo.barrier_matrix(ls, theta[:3], pairs=2, steps=10,
                                             progress=False), 1)
print(json.dumps(dict(seconds=t, version=losstopo.__version__)))
"""

CASES = {
    "loss_grad": "loss+grad, P=50",
    "loss_grad_1": "loss+grad, P=1",
    "lbfgs_iteration": "L-BFGS-GSS iteration (minimize)",
    "sgd_epoch": "SGD epoch, 16 runs (train)",
    "path_step": "path step, M=50, 10 modes",
    "path_measure": "measure a finished path (refine)",
    "barrier_matrix": "barrier_matrix, 2 pairs x 10 steps",
}


def run(python, case, n):
    out = subprocess.run([python, "-c", CASE, case, str(n)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{python} {case}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="python of the other installation")
    ap.add_argument("--baseline-name", default="baseline")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="N = 5000, for a smoke run")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    n = 5000 if args.quick else 50000
    ours = sys.executable
    rows = []
    for case in args.cases.split(","):
        times = {"ours": [], "base": []}
        for _ in range(args.rounds):
            times["ours"].append(run(ours, case, n))
            times["base"].append(run(args.baseline, case, n))
        t_ours, t_base = min(times["ours"]), min(times["base"])
        rows.append([CASES[case], common.fmt(t_ours), common.fmt(t_base),
                     f"{t_base / t_ours:.2f}x"])
        print(rows[-1], flush=True)
    table = common.markdown_table(
        ["case", "this build (s)", f"{args.baseline_name} (s)", "speedup vs baseline"], rows)
    body = (f"FCP on the first {n} MNIST training images, float32, all cores; best of "
            f"{args.rounds} rounds, the two builds taking turns.\n\n{table}\n")
    print(body)
    if not args.no_append:
        common.append_results(f"bench_regression: this build vs {args.baseline_name}", body)


if __name__ == "__main__":
    main()
