"""The first layer from the inputs' nonzeros against the dense products, in one process:
the same engine with input_products="dense" and "auto" (which takes the sparse products
for MNIST's 19% nonzero pixels), case by case in turns, best of the rounds.

    python benchmarks/bench_sparse_inputs.py [--rounds 3] [--n 50000] [--no-append]

Cases (FCP, float32, all cores): one batched loss+grad of 50 and of 1 vectors; one
FourierPathFinder Adam step (M = 50, 10 modes); one L-BFGS-GSS iteration (minimize);
Hessian-vector products at one point (kept between calls, as Lanczos runs them) for 1
and for 10 directions; loss+grad of 1 and of 50 vectors on a list of 2,000 samples
(minibatches: the panels made per chunk, so only wide products take them); and on
random inputs (no zeros), loss+grad of 50 vectors, where "auto" must choose the
dense products and take their time.
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
from losstopo._native import core  # noqa: E402


def best(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def cases(theta):
    a, b = theta[0], theta[1]
    listed = np.sort(np.random.default_rng(1).choice(50000, 2000, replace=False))

    def path_step(ls):
        def optimize(steps):
            p = core.PathParams(n_modes=10, n_points=50, steps=steps)
            pb = core.PathBatchF32(ls.engine, a[None], b[None], p)
            t0 = time.perf_counter()
            pb.optimize()
            return time.perf_counter() - t0
        steps = 5
        return max(0.0, min(optimize(steps) for _ in range(2))
                   - min(optimize(0) for _ in range(2))) / steps

    def lbfgs(ls):
        it = 20
        return best(lambda: losstopo.minimize(ls, theta[0], max_iter=it, gtol=0.0), 1) / it

    return {
        "loss+grad, P=50": lambda ls: best(lambda: ls.loss_and_grad(theta), 2),
        "loss+grad, P=1": lambda ls: best(lambda: ls.loss_and_grad(theta[0]), 5),
        "path step, M=50, 10 modes": path_step,
        "L-BFGS-GSS iteration (minimize)": lbfgs,
        "Hessian-vector product, 1 direction": lambda ls: best(
            lambda: ls.engine.hessian_vector(theta[:1], theta[1:2]), 3),
        "Hessian-vector products, 10 directions": lambda ls: best(
            lambda: ls.engine.hessian_vector(theta[:1], theta[1:11]), 2),
        "loss+grad, P=1, 2,000 listed samples": lambda ls: best(
            lambda: ls.loss_and_grad(theta[0], samples=listed[listed < ls.num_samples]), 5),
        "loss+grad, P=50, 2,000 listed samples": lambda ls: best(
            lambda: ls.loss_and_grad(theta, samples=listed[listed < ls.num_samples]), 3),
    }


def mnist_setup(doc: str):
    """The command line (--rounds, --n, --no-append) of a script that times the FCP
    first layer on MNIST, and its data: (args, X, y, net, theta (50, D))."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=50000, help="MNIST training images used")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    d = losstopo.datasets.mnist(progress=False)
    net = losstopo.fcp()
    return args, d.train[0][:args.n], d.train[1][:args.n], net, net.init(50, seed=0)


def main():
    args, X, y, net, theta = mnist_setup(__doc__)
    t0 = time.perf_counter()
    auto = losstopo.Landscape(net, X, y)
    t_build_auto = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense = losstopo.Landscape(net, X, y, input_products="dense")
    t_build_dense = time.perf_counter() - t0
    rows = []
    for name, fn in cases(theta).items():
        times = {"dense": [], "auto": []}
        for _ in range(args.rounds):
            times["dense"].append(fn(dense))
            times["auto"].append(fn(auto))
        td, ta = min(times["dense"]), min(times["auto"])
        rows.append([f"MNIST: {name}", common.fmt(td), common.fmt(ta), f"{td / ta:.2f}x"])
        print(rows[-1], flush=True)
    # random inputs, no zeros: auto must take the dense products
    R = np.random.default_rng(0).random(X.shape, dtype=np.float32) + np.float32(1e-3)
    r_auto = losstopo.Landscape(net, R, y)
    r_dense = losstopo.Landscape(net, R, y, input_products="dense")
    assert not r_auto.sparse_inputs
    fn = cases(theta)["loss+grad, P=50"]
    times = {"dense": [], "auto": []}
    for _ in range(args.rounds):
        times["dense"].append(fn(r_dense))
        times["auto"].append(fn(r_auto))
    td, ta = min(times["dense"]), min(times["auto"])
    rows.append(["random inputs: loss+grad, P=50", common.fmt(td), common.fmt(ta),
                 f"{td / ta:.2f}x"])
    print(rows[-1], flush=True)
    table = common.markdown_table(
        ["case", "dense products (s)", "auto (s)", "speedup"], rows)
    body = (f"FCP on the first {args.n} MNIST training images (input density "
            f"{auto.input_density:.3f}: auto chose {'sparse' if auto.sparse_inputs else 'dense'}"
            f" products), float32, all cores; best of {args.rounds} rounds, the two "
            f"settings taking turns. Building the landscape: {t_build_auto:.3f} s with the "
            f"sparse panels, {t_build_dense:.3f} s without.\n\n{table}\n")
    print(body)
    if not args.no_append:
        common.append_results("bench_sparse_inputs: the first layer from the inputs' "
                              "nonzeros", body)


if __name__ == "__main__":
    main()
