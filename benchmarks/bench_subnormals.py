"""What a pass costs near a well-fitted minimum, where the softmax's tails are subnormal.

    python benchmarks/bench_subnormals.py [--n 10000] [--sets study/sets.npz] [--no-append]

Two L-BFGS-GSS minima and two SGD minima of FCP on N MNIST training images (trained
here, 200 iterations and 10 epochs, or the first two of each training set of a study's
sets.npz); then one batched loss+grad of the 48 interior points of the straight line
between each pair, best of 3. The shapes are the same, so the ratio L-BFGS / SGD is
what the near-zero losses cost: on x86 an operation on a subnormal float takes a
microcode assist, and near an L-BFGS minimum the wrong classes' probabilities and the
backward pass's deltas fall below FLT_MIN. The engine's threads flush them
(denormals.hpp); the ratio should be about 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402


def minima(ls, X, y, args):
    if args.sets:
        with np.load(args.sets) as d:
            return d["LBFGS_train"][:2], d["SGD_train"][:2]
    net = losstopo.fcp()
    lb = losstopo.train(net, (X, y), method="lbfgs", runs=2, epochs=200, progress=False)
    sgd = losstopo.train(net, (X, y), method="sgd", runs=2, epochs=10, progress=False)
    return lb.theta_final, sgd.theta_final


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--sets", default=None)
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    X, y, source = common.mnist_like(a.n)
    ls = losstopo.Landscape(losstopo.fcp(), X, y)
    lbfgs, sgd = minima(ls, X, y, a)
    t = np.linspace(0, 1, 50)[1:-1, None]
    rows, times = [], {}
    for name, (A, B) in (("L-BFGS-GSS", lbfgs), ("SGD", sgd)):
        W = ((1 - t) * A + t * B).astype(np.float32)
        times[name] = common.best_time(lambda W=W: ls.loss_and_grad(W), repeat=3)
        loss = ls.loss(np.stack([A, B]))
        rows.append([name, f"{loss[0]:.3g}, {loss[1]:.3g}",
                     f"{ls.loss(W).min():.3g}", f"{times[name]:.3f}"])
    table = common.markdown_table(
        ["minima", "endpoint losses", "lowest loss on the line", "loss+grad of 48 points (s)"],
        rows)
    body = (f"{source}, N = {a.n}, FCP, float32, all cores; minima "
            f"{'from ' + a.sets if a.sets else 'trained here'}.\n\n{table}\n\n"
            f"L-BFGS-GSS / SGD: {times['L-BFGS-GSS'] / times['SGD']:.2f}x.")
    print(body)
    if not a.no_append:
        common.append_results("bench_subnormals: a pass near well-fitted minima", body)


if __name__ == "__main__":
    main()
