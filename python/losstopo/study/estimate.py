"""How long a study will take: a short calibration of each stage on the study's own
data and network, projected to its whole configuration, on this machine and on a
cluster of workers like it."""

from __future__ import annotations

import heapq
import math
import time

import numpy as np

from ..landscape import Landscape
from ..paths import make_path_batch, path_params, measure_grid
from ..progress import Progress
from ..train import train
from . import stages
from .config import network
from .layout import path_files
from .stages.curvature import TRACE_BATCH

# Samples of the small draw a path step is timed on beside the calibrated step.
SMALL_STEP = 100


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def calibrate(config: dict, train_ls: Landscape, test_ls: Landscape, runs: int = 4,
              progress: bool = True) -> dict:
    """Seconds per unit of work, measured on the study's landscapes: an SGD epoch, an
    L-BFGS iteration (both per run, curves included), a path step and a path's
    measurement (per pair, on the training landscape)."""
    c = config
    net = network(c["network"])
    if net is None:
        raise ValueError("estimate: the projection needs a native network (fcp or autoencoder)")
    R = max(1, min(runs, c["runs"]))
    bar = Progress(5, desc="calibrating", enabled=progress)
    out = {}
    try:
        # SGD: minibatch steps of R runs, then the per-epoch curves (loss of every run on
        # the training and test sets).
        th = net.init(R, seed=0, dtype=train_ls.dtype)
        rng = np.random.default_rng(0)
        B = min(c["batch_size"], train_ls.num_samples)
        samples = rng.integers(0, train_ls.num_samples, (R, B))
        train_ls.evaluate_each(th, samples)  # warm up
        k = 20
        t_steps = _timed(lambda: [train_ls.evaluate_each(th, samples) for _ in range(k)]) / k
        t_curves = _timed(lambda: (train_ls.loss(th), test_ls.loss(th)))
        steps = math.ceil(train_ls.num_samples / B)
        out["sgd_epoch_per_run"] = (steps * t_steps + t_curves) / R
        bar.update(1)
        # L-BFGS-GSS: the difference of two short runs is the cost of iterations alone.
        kw = dict(method="lbfgs", runs=R, seed=1, progress=False)
        t2 = _timed(lambda: train(net, train_ls, test_ls, epochs=2, **kw))
        t5 = _timed(lambda: train(net, train_ls, test_ls, epochs=5, **kw))
        out["lbfgs_iter_per_run"] = max(t5 - t2, 1e-9) / 3 / R
        bar.update(1)
        # Paths: the objective and gradient of one pair's path (an Adam step), on a
        # step's samples with stochastic steps, and the path's measurement.
        a, b = net.init(2, seed=2, dtype=train_ls.dtype)
        params = path_params(c["n_modes"], c["n_points"], c["lam"], "adam", c["path_lr"], 1,
                             "sum", None, "strong_wolfe", c.get("path_batch")
                             if (c.get("path_batch") or 0) < train_ls.num_samples else None)
        pb = make_path_batch(train_ls, a[None], b[None], params)
        C = 1e-3 * rng.standard_normal((1, c["n_modes"], net.num_params)).astype(train_ls.dtype)
        batch = pb.step_samples(0) if "batch_size" in params else None
        # the endpoints held, as the path optimizer holds them while its steps run
        ends = np.stack([a, b])
        train_ls.engine.hold_basis(ends)
        try:
            pb.objective(C, samples=batch)  # warm up
            out["path_step"] = _timed(lambda: [pb.objective(C, samples=batch)
                                               for _ in range(3)]) / 3
            # and on a small draw of samples: a step's fixed part (forming the path's
            # points from its coefficients, and back) that fewer samples do not shrink
            n_small = min(SMALL_STEP, train_ls.num_samples)
            small = np.sort(rng.choice(train_ls.num_samples, n_small, replace=False))
            small = small.astype(np.int64)
            pb.objective(C, samples=small)
            out["path_step_small"] = _timed(lambda: [pb.objective(C, samples=small)
                                                     for _ in range(3)]) / 3
            out["path_step_small_samples"] = n_small
        finally:
            train_ls.engine.release_basis(ends)
        bar.update(1)
        grid = measure_grid(train_ls)
        out["path_measure"] = _timed(lambda: pb.measure(C, [], True, **grid))
        bar.update(1)
        # Curvature: Hessian-vector products at R points (a Lanczos step of the
        # sharpness), 16 at one point (Hutchinson probes), and slice points.
        if c.get("curvature_solutions") and hasattr(train_ls, "hessian_vector"):
            from ..slices import slice2d

            V = rng.standard_normal((R, net.num_params)).astype(train_ls.dtype)
            out["hvp_per_point"] = _timed(lambda: train_ls.hessian_vector(th, V)) / R
            k = TRACE_BATCH  # Hutchinson probes per engine call, as the stage runs them
            Vk = rng.standard_normal((k, net.num_params)).astype(train_ls.dtype)
            out["hvp_shared"] = _timed(lambda: train_ls.hessian_vector(th[0], Vk)) / k
            out["slice_point"] = _timed(lambda: slice2d(train_ls, th[0].astype(np.float64), n=8,
                                                        accuracy=False)) / 64
        bar.update(1)
    finally:
        bar.close()
    out["n_train"], out["n_test"] = train_ls.num_samples, test_ls.num_samples
    out["calibration_runs"] = R
    return out


def project(config: dict, cal: dict, workers: int = 1) -> dict:
    """Projected seconds of each stage for ``workers`` workers like this machine (1:
    this machine alone), keyed as the stages' estimates name them, and the total.
    Tasks are whole training groups and chunks of pairs; a stage takes as many rounds as
    its tasks need, a set's pairs finishing before the next set's start (as the study
    runs them)."""

    def schedule(tasks):
        # each task to the worker that is free first, in order (as the scheduler does)
        free = [0.0] * max(1, workers)
        for t in tasks:
            heapq.heapreplace(free, free[0] + t)
        return max(free)

    out = {key: seconds for key, _, seconds in rows(config, cal, schedule)}
    out["total"] = sum(out.values())
    return out


def rows(config: dict, cal: dict, schedule) -> list:
    """[(key, label, seconds)] of every stage's estimate, in the stages' order."""
    return [row for stage in stages.ordered() for row in stage.estimate(config, cal, schedule)]


def _human(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def report(config: dict, cal: dict, cluster_workers=None) -> str:
    """A markdown table of the projections for this machine, 16 and 64 workers like it,
    and the named cluster (``cluster_workers``: its threads in machines like this
    one)."""
    counts = [1, 16, 64]
    if cluster_workers and cluster_workers not in counts:
        counts.append(cluster_workers)
    proj = {w: project(config, cal, w) for w in counts}
    head = ["stage"] + [("this machine" if w == 1 else f"{w} workers")
                        + (" (--cluster)" if w == cluster_workers else "") for w in counts]
    labels = [(label, key) for key, label, _ in rows(config, cal, lambda tasks: 0.0)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key in labels + [("total", "total")]:
        lines.append("| " + " | ".join([label] + [_human(proj[w][key]) for w in counts]) + " |")
    c = config
    notes = (
        f"Calibrated on this machine with the study's data ({cal['n_train']} training, "
        f"{cal['n_test']} test samples) and {cal['calibration_runs']} runs: SGD epoch "
        f"{cal['sgd_epoch_per_run']:.3g} s per run, L-BFGS iteration "
        f"{cal['lbfgs_iter_per_run']:.3g} s per run, path step {cal['path_step']:.3g} s"
        + (f" ({cal['path_step_small']:.3g} s on {cal['path_step_small_samples']} samples)"
           if "path_step_small" in cal else "")
        + f" and measurement {cal['path_measure']:.3g} s per pair. Workload: {c['runs']} runs per "
        f"optimizer ({c['sgd_epochs']} epochs, {c['lbfgs_iters']} iterations), "
        f"{c['pairs']} pairs per set x {len(path_files())} landscapes, {c['path_steps']} steps "
        "each. Workers are assumed to be machines like this one; training spreads over them "
        "only with --train-group (one group otherwise), and scheduling overhead is not "
        "counted.")
    return "\n".join(lines) + "\n\n" + notes + "\n"
