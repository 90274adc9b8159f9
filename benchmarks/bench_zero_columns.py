"""Input columns zero in every sample left out of the first layer, against the engine
that reads them, in one process: the same data with drop_zero_columns=True (the
default) and False, case by case in turns, best of the rounds.

    python benchmarks/bench_zero_columns.py [--rounds 3] [--n 50000] [--no-append]

MNIST has 67 of its 784 pixel columns zero in every training image, so the dense
first-layer products shrink by 8.5%; the first layer is about 62% of a batched FCP
loss+grad, which bounds the gain near 1 / (1 - 0.62 x 0.085) = 1.056x. Cases (FCP,
float32, all cores): those of bench_sparse_inputs.py with the dense products forced,
then loss+grad of 50 vectors with the automatic choice (the sparse products, which
skip zero columns anyway: no gain, and no loss, expected), and one epoch-slice of
minibatch SGD (each call translates its vectors, the cost of the drop on small work).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from bench_sparse_inputs import best, cases, mnist_setup  # noqa: E402

import losstopo  # noqa: E402


def sgd_steps(theta, steps=50, batch=64):
    order = np.random.default_rng(2).integers(0, 50000, (steps, len(theta), batch))

    def run(ls):
        s = order % ls.num_samples

        def go():
            for k in range(steps):
                ls.evaluate_each(theta, s[k])
        return best(go, 2) / steps
    return run


def main():
    args, X, y, net, theta = mnist_setup(__doc__)
    settings = {}
    for products in ("dense", "auto"):
        for drop in (False, True):
            settings[products, drop] = losstopo.Landscape(
                net, X, y, input_products=products, drop_zero_columns=drop)
    kept = settings["dense", True].kept_columns
    todo = [(f"dense products: {name}", "dense", fn) for name, fn in cases(theta).items()]
    todo.append(("auto (sparse) products: loss+grad, P=50", "auto",
                 cases(theta)["loss+grad, P=50"]))
    todo.append(("minibatch SGD step, 10 runs x 64 samples (evaluate_each)", "dense",
                 sgd_steps(theta[:10])))
    rows = []
    for name, products, fn in todo:
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for drop in (False, True):
                times[drop].append(fn(settings[products, drop]))
        tk, td = min(times[False]), min(times[True])
        rows.append([f"MNIST: {name}", common.fmt(tk), common.fmt(td), f"{tk / td:.3f}x"])
        print(rows[-1], flush=True)
    table = common.markdown_table(
        ["case", "all 784 columns (s)", f"{kept} kept columns (s)", "speedup"], rows)
    body = (f"FCP on the first {args.n} MNIST training images ({784 - kept} of 784 "
            f"columns zero in every image), float32, all cores; best of {args.rounds} "
            f"rounds, the two settings taking turns.\n\n{table}\n")
    print(body)
    if not args.no_append:
        common.append_results("bench_zero_columns: zero input columns left out", body)


if __name__ == "__main__":
    main()
