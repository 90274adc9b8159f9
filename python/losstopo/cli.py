"""The ``losstopo`` command line."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import __version__
from .paths import CURVES
from .progress import to_stderr
from .study import settings as study_settings, stages as study_stages
from .study.settings import DATA, NETWORKS, PRESET_NAMES


def _err(line: str) -> None:
    """A line on stderr (lost, never the exit status, where stderr cannot be written)."""
    to_stderr(line)


def cmake_dir():
    """The folder holding losstopoConfig.cmake inside the installed package, or None."""
    import glob
    import os

    from ._native import core  # next to the compiled module (also in editable installs)

    for base in (os.path.dirname(os.path.abspath(core.__file__)),
                 os.path.dirname(os.path.abspath(__file__))):
        hits = sorted(glob.glob(os.path.join(base, "lib*", "cmake", "losstopo",
                                             "losstopoConfig.cmake")))
        if hits:
            return os.path.dirname(hits[0])
    return None


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
                _err(f"(MNIST not cached: {e.__class__.__name__}; using synthetic data)")
    if source == "synthetic":
        from .study.config import available_memory

        need, have = args.n * 784 * 4, available_memory()
        if have and need > have:
            raise ValueError(f"--n {args.n}: synthetic data of that size needs "
                             f"{need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB "
                             "of memory available")
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


def _bench(args) -> int:
    from . import bench

    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    suites = bench.SUITES if args.suite == "all" else (args.suite,)
    report = bench.run(suites, size=size, threads=args.threads, progress=not args.quiet)
    print(bench.report_markdown(report), end="")
    if args.json is not None:
        bench.write_json(args.json, report)
        if not args.quiet:
            _err(f"wrote {args.json}")
    return 0


def study_overrides(args) -> dict:
    """The configuration's settings that the study flags of ``args`` override (None
    where a flag was not given), keyed by setting name (``--epochs`` -> sgd_epochs)."""
    return {name: getattr(args, flag.replace("-", "_"), None)
            for flag, name, _ in study_settings.STUDY_FLAGS}


def _study(args, stages):
    from .study import Study, StudyError, make_config

    config = None
    if not _configures(args.command) and args.network is not None:
        raise StudyError(f"--network: `losstopo {args.command}` takes the study's configuration "
                         "from --out; a study is set up by `losstopo reproduce` or "
                         "`losstopo train`")
    if _configures(args.command):
        overrides = study_overrides(args)
        config = make_config(args.network or "fcp", args.preset, data=args.data,
                             device=args.device, curve=args.curve, **overrides)
    settings = {name: getattr(args, flag.replace("-", "_"), None)
                for flag, name, _ in study_settings.STAGE_FLAGS}
    if getattr(args, "estimate", False):
        return _estimate(args, dict(config, **{k: v for k, v in settings.items()
                                               if v is not None}))
    if args.cluster is None:
        with Study(args.out, config, force=args.force, quiet=args.quiet,
                   threads=args.threads, settings=settings) as study:
            study.run(stages)
    else:  # connected (or refused) before any work starts
        from .cluster import Cluster

        with Cluster(args.cluster) as cluster:
            if not args.quiet:
                _err(f"losstopo: cluster {cluster.describe()}")
            with Study(args.out, config, force=args.force, quiet=args.quiet,
                       client=cluster.client, threads=args.threads,
                       settings=settings) as study:
                study.run(stages)
    if args.command in ("reproduce", "plot") and not args.quiet:
        print(f"report: {study.path('report.md')}")
    return 0


def _estimate(args, config) -> int:
    """Calibrates each stage briefly and prints the projected time; runs nothing else
    and writes nothing."""
    from .study import estimate, study_data, study_landscapes

    workers = None
    if args.cluster is not None:
        from ._native import cores
        from .cluster import Cluster, worker_threads

        with Cluster(args.cluster) as cluster:  # in machines like this one
            workers = max(1, round(sum(worker_threads(cluster.client).values()) / cores()))
    train_ls, test_ls = study_landscapes(config, study_data(config, progress=not args.quiet),
                                         args.threads)
    cal = estimate.calibrate(config, train_ls, test_ls, progress=not args.quiet)
    print(f"Projected time of `losstopo reproduce --preset {config['preset']}` "
          f"({config['network']}):\n")
    print(estimate.report(config, cal, workers), end="")
    return 0


_REPRODUCE_HELP = ("the whole study: train, embed, paths, curvature, figures and "
                   "report.md")


def _configures(command) -> bool:
    """Whether a study command sets a study up (takes the configuration's flags):
    ``reproduce`` and the command of the stage that starts a study."""
    return command == "reproduce" or study_stages.commands().get(command, ("", False))[1]


def _folder(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must name a folder (it is empty)")
    return value


def _add_study_args(p, full: bool):
    p.add_argument("--out", required=True, type=_folder,
                   help="the study's folder (created; resumable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log on stderr")
    p.add_argument("--cluster", default=None, metavar="SPEC",
                   help="run training groups and path pairs on a Dask cluster: local:N (N "
                   "worker processes here), tcp://HOST:PORT or a scheduler .json file "
                   "(pip install \"losstopo[distributed]\")")
    p.add_argument("--threads", type=int, default=None,
                   help="engine threads, here and in every cluster task (default: all "
                   "cores here; on a cluster the smallest worker's threads); a study "
                   "resumes with the count it was begun with")
    for flag, _, help_ in study_settings.STAGE_FLAGS:
        p.add_argument(f"--{flag}", type=int, default=None, help=help_)
    if not full:
        p.add_argument("--network", default=None, help=argparse.SUPPRESS)
        p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
        return
    p.add_argument("--network", default="fcp", choices=NETWORKS)
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    p.add_argument("--estimate", action="store_true",
                   help="calibrate each stage briefly on this machine and print the study's "
                   "projected time (here, on 16 and 64 such workers, and on --cluster); "
                   "runs nothing else")
    p.add_argument("--data", default="mnist", choices=DATA)
    p.add_argument("--device", default="cpu")
    p.add_argument("--curve", default="fourier", choices=CURVES,
                   help="the paths' curve family (default: the paper's sine series); "
                        "--path-steps and the modes apply to all")
    p.add_argument("--force", action="store_true",
                   help="start afresh when --out holds a study of another configuration")
    for flag, _, help_ in study_settings.STUDY_FLAGS:
        p.add_argument(f"--{flag}", type=int, default=None, help=help_)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="losstopo",
        description="Topography of neural-network loss landscapes: batched losses, "
        "optimizers and minimum-energy paths.",
    )
    p.add_argument("--version", action="version", version=f"losstopo {__version__}")
    p.add_argument("--cmake-dir", action="store_true",
                   help="print the folder of losstopo's CMake package (for find_package)")
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

    stages = {"reproduce": (_REPRODUCE_HELP, study_stages.stage_names())}
    stages.update((cmd, (help_, st)) for cmd, (help_, _, st) in study_stages.commands().items())
    for name, (help_, st) in stages.items():
        q = sub.add_parser(name, help=help_)
        _add_study_args(q, full=_configures(name))
        q.set_defaults(func=lambda a, st=st: _study(a, st))

    from .bench import json_file, thread_count

    b = sub.add_parser("bench", help="measure this machine: losstopo against the installed "
                       "peers (JAX, torch), as a markdown table")
    b.add_argument("suite", nargs="?", default="all",
                   choices=["landscape", "train", "paths", "all"],
                   help="which suite to run (default: all)")
    b.add_argument("--quick", action="store_true",
                   help="small sizes (well under a minute per suite on 2 cores)")
    b.add_argument("--json", metavar="FILE", type=json_file, default=None,
                   help="also write all numbers (machine, versions, timings, ratios) as JSON")
    b.add_argument("--threads", metavar="N", type=thread_count, default=None,
                   help="engine (and torch) threads (default: all cores)")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the tests' sizes
    b.set_defaults(func=_bench)

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
    if args.cmake_dir:
        d = cmake_dir()
        if d is None:
            _err("losstopo: error: this installation has no CMake package")
            return 2
        print(d)
        return 0
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "points", None) is not None and args.points < 2:
        parser.error("--points must be at least 2 (the demo follows the line between two)")
    bounds = [(flag, 1) for flag in ("n", "threads")]  # demo's and the engine's
    bounds += [(flag, study_settings.minimum(name))  # the study's, from its settings table
               for flag, name, _ in study_settings.STUDY_FLAGS + study_settings.STAGE_FLAGS]
    for flag, low in bounds:
        v = getattr(args, flag.replace("-", "_"), None)
        if v is not None and v < low:
            what = {0: "a non-negative integer", 1: "a positive integer"}.get(
                low, f"an integer >= {low}")
            parser.error(f"--{flag} must be {what}")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("losstopo: interrupted; finished work is kept, rerun to continue")
        return 130
    except (ValueError, TypeError, ConnectionError, RuntimeError, ImportError) as e:
        _err(f"losstopo: error: {e}")
        return 2
    except OSError as e:  # a read-only folder, a full disk, a file where a folder should be
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        what = e.strerror or str(e) or type(e).__name__
        other = "choose another --out" if hasattr(args, "out") else "choose another path"
        _err(f"losstopo: error: {where}{what} ({type(e).__name__}); check the path and its "
             f"permissions, or {other}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
