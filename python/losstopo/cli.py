"""The ``losstopo`` command line."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import __version__


def _demo(args) -> int:
    from . import Landscape, datasets, fcp

    net = fcp()
    source = "synthetic"
    if args.data in ("mnist", "auto"):
        try:
            data = datasets.mnist(download=args.data == "mnist", progress=not args.quiet)
            X, y = data.train
            source = "MNIST train"
        except (FileNotFoundError, ConnectionError) as e:
            if args.data == "mnist":
                raise
            if not args.quiet:
                print(f"(MNIST not cached: {e.__class__.__name__}; using synthetic data)",
                      file=sys.stderr)
    if source == "synthetic":
        X, y = datasets.synthetic(args.n, 784, 10, seed=0)
    X, y = X[: args.n], y[: args.n]
    ls = Landscape(net, X, y, threads=args.threads)
    print(f"losstopo {__version__} demo: {net!r}")
    print(f"  data: {source}, {ls.num_samples} samples; {net.num_params} parameters")
    theta = net.init(args.points, seed=args.seed)
    t0 = time.perf_counter()
    loss, grad = ls.loss_and_grad(theta)
    dt = time.perf_counter() - t0
    acc = ls.accuracy(theta)
    print(f"  {args.points} random initializations (PyTorch's default init):")
    for p in range(args.points):
        print(f"    #{p}: loss {loss[p]:.4f}  accuracy {acc[p]:.3f}  |grad| "
              f"{np.linalg.norm(grad[p]):.4f}")
    gflops = 6.0 * ls.num_samples * net.num_params * args.points / dt / 1e9
    print(f"  one batched loss+gradient of {args.points} vectors: {dt * 1e3:.1f} ms "
          f"({gflops:.1f} GFLOP/s counted as 6*N*D*P)")
    # The loss along the straight line between the first two vectors, in one call.
    t = np.linspace(0.0, 1.0, 11)
    line = (1 - t)[:, None] * theta[0] + t[:, None] * theta[1]
    prof = ls.loss(line)
    print("  loss along the straight line between #0 and #1 (t = 0, 0.1, ..., 1):")
    print("    " + " ".join(f"{v:.4f}" for v in prof))
    print(f"  barrier height (max along the line): {prof.max():.4f}")
    return 0


def _data(args) -> int:
    from . import datasets

    if args.action == "fetch":
        path = datasets.fetch_mnist(path=args.path, cache_dir=args.cache_dir,
                                    progress=not args.quiet)
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="losstopo",
        description="Topography of neural-network loss landscapes: batched losses, "
        "optimizers and minimum-energy paths.",
    )
    p.add_argument("--version", action="version", version=f"losstopo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="evaluate a landscape at random points and print numbers")
    d.add_argument("--data", choices=["auto", "mnist", "synthetic"], default="auto",
                   help="auto: MNIST if cached, else synthetic (default); mnist: fetch if needed")
    d.add_argument("--n", type=int, default=10_000, help="samples to use (default 10000)")
    d.add_argument("--points", type=int, default=8, help="parameter vectors (default 8)")
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_demo)

    g = sub.add_parser("data", help="manage datasets")
    g.add_argument("action", choices=["fetch"])
    g.add_argument("name", choices=["mnist"])
    g.add_argument("--path", default=None, help="read from this file or IDX folder instead")
    g.add_argument("--cache-dir", default=None)
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_data)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    for name in ("n", "points", "threads"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            parser.error(f"--{name} must be a positive integer")
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ConnectionError, RuntimeError) as e:
        print(f"losstopo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
