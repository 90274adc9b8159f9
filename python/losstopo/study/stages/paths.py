"""Stage 3: a path and its barriers for random pairs of each set, on the training
landscape and, for the test sets, on the test landscape too."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...paths import barrier_matrix
from .. import report
from ..config import StudyError
from ..files import PathsFile
from ..layout import path_files
from ..results import PathsResults
from .base import Stage

# Pairs optimized together in one engine call (barrier_matrix's chunk): a cluster's task.
CHUNK = 4


def path_kwargs(config: dict, ls) -> dict:
    """The path settings of ``config`` for barrier_matrix on ``ls``. Stochastic steps
    draw path_batch samples; a landscape with no more samples than that runs every step
    on all of them."""
    c = config
    kw = dict(n_points=c["n_points"], n_modes=c["n_modes"], lam=c["lam"], lr=c["path_lr"],
              curve=c["curve"], steps=c["path_steps"], refine=True, chunk=CHUNK)
    if c["path_batch"] is not None and c["path_batch"] < ls.num_samples:
        kw["batch_size"] = c["path_batch"]
    return kw


def pair_seconds(config: dict, cal: dict, n: int, steps: Optional[int] = None,
                 batch: Optional[int] = None) -> float:
    """A pair's projected time on a landscape of ``n`` samples: its steps (each on a
    step's samples) and its measurement on all of them, scaled from the calibration on
    the training landscape (a step on the study's ``path_batch`` samples). ``steps`` and
    ``batch``: other path settings than the study's paths' (None: theirs)."""
    n_tr = cal["n_train"]
    calibrated = config.get("path_batch")
    batch = batch or calibrated
    return ((steps or config["path_steps"]) * step_seconds(cal, min(batch or n, n),
                                                            min(calibrated or n_tr, n_tr))
            + cal["path_measure"] * n / n_tr)


def step_seconds(cal: dict, samples: int, calibrated: int) -> float:
    """One path step on ``samples`` samples, from the calibrated step on ``calibrated``:
    a fixed part and a part per sample where the calibration timed a small draw too
    (``path_step_small``), else in proportion to the samples."""
    small, t_small = cal.get("path_step_small_samples"), cal.get("path_step_small")
    if small is None or t_small is None or calibrated <= small:
        return cal["path_step"] * samples / calibrated
    per = max(cal["path_step"] - t_small, 0.0) / (calibrated - small)
    return max(t_small - per * small, 0.0) + per * samples


def chunked(pairs: int, seconds: float) -> list:
    """The task durations of ``pairs`` pairs in chunks of CHUNK."""
    return [min(CHUNK, pairs - p0) * seconds for p0 in range(0, pairs, CHUNK)]


def pairs_of(config: dict) -> int:
    """How many pairs each set's paths run (no more than the set has)."""
    return min(config["pairs"], config["keep"] * (config["keep"] - 1) // 2)


class PathsStage(Stage):
    name = "paths"
    command_help = ("stage 3: paths and barriers for random pairs of each set, and the "
                    "convergence of a few of them over the step budget, and a few again "
                    "after alignment")
    requires = ("train",)
    results = PathsResults
    report_sections = ((20, report.barriers_section),)

    def produces(self):
        return [fname for _, _, fname in path_files()]

    def run(self, study):
        c = study.config
        sets = study.sets()
        files = [(name, lname, PathsFile(name, lname)) for name, lname, _ in path_files()]
        for _, _, f in files:  # a broken file stops us now, not hours in
            if study.folder.exists(f.name):
                f.read(study.folder, partial=True)
        train_ls, test_ls = study.landscapes()
        summary = {}
        for name, lname, f in files:
            ls = train_ls if lname == "train" else test_ls
            study.log.info("paths: %s, %s pairs on the %s landscape", name, c["pairs"], lname)
            study.folder.own(f.name)
            try:
                res = barrier_matrix(ls, sets[name], pairs=c["pairs"], seed=c["seed"],
                                     out=study.path(f.name), progress=not study.quiet,
                                     client=study.client, **path_kwargs(c, ls))
            except ValueError as e:
                if "out " not in str(e):
                    raise
                raise StudyError(str(e)) from e
            study.folder.record(f.name)
            b = res["barrier"]
            summary[f"{name}@{lname}"] = dict(
                median=float(np.median(b)), q25=float(np.percentile(b, 25)),
                q75=float(np.percentile(b, 75)), mean=float(np.mean(b)),
                median_rel=float(np.median(res["barrier_rel"])),
                median_mean=float(np.median(res["barrier_mean"])),
                median_refined=float(np.median(res["barrier_refined"])),
                median_straight=float(np.median(res["straight_barrier"])),
                pairs=int(len(b)),
            )
        return PathsResults(barriers=summary)

    def estimate(self, config, cal, schedule):
        n_tr, total = cal["n_train"], 0.0
        for _, lname, _ in path_files():
            # a step costs in proportion to the samples it runs on, a measurement to all
            n = n_tr if lname == "train" else cal["n_test"]
            total += schedule(chunked(pairs_of(config), pair_seconds(config, cal, n)))
        return [("paths", "paths (all sets)", total)]


STAGE = PathsStage()
