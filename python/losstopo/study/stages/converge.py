"""Path convergence (not in the paper): the first pairs of each set's paths on the
training landscape, their barriers after each budget of convergence.STEPS, and the
minimax reference."""

from __future__ import annotations

import numpy as np

from ... import convergence
from .. import report
from ..files import ConvergenceFile, PathsFile
from ..layout import SETS
from ..results import ConvergeResults
from .base import Stage
from .paths import pairs_of


def certified_reference(config: dict) -> bool:
    """Whether the certify stage refines every pair this stage follows: its barriers
    are then the reference, and the minimax run is not made."""
    return (config.get("certify_pairs") or 0) >= (config.get("converge_pairs") or 0)


class ConvergeStage(Stage):
    name = "converge"
    command = "paths"
    requires = ("paths",)
    asked_by = "converge_pairs"
    results = ConvergeResults
    report_sections = ((30, report.convergence_section),)

    def produces(self):
        return [ConvergenceFile.name]

    def run(self, study):
        c = study.config
        sets = study.sets()
        train_ls, _ = study.landscapes()
        per_set, summary = {}, {}
        study.folder.own(ConvergenceFile.name)
        steps = convergence.STEPS
        for name in SETS:
            # the paths stage's own pairs, as its file names them
            idx = PathsFile(name).read(study.folder)["pairs"][: c["converge_pairs"]]
            study.log.info("converge: %s, %d pairs, %s steps%s", name, len(idx),
                           "/".join(map(str, steps)), "" if certified_reference(c) else
                           " and the minimax reference")
            th = sets[name]
            res = convergence.path_convergence(
                train_ls, th[idx[:, 0]], th[idx[:, 1]], steps=steps,
                reference=not certified_reference(c), n_points=c["n_points"],
                n_modes=c["n_modes"], lam=c["lam"], lr=c["path_lr"], curve=c["curve"],
                progress=not study.quiet)
            per_set[name] = dict(res, pairs=idx)
            summary[name] = dict(
                steps=[int(k) for k in res["steps"]],
                median=[float(v) for v in np.median(res["barrier_refined"], axis=0)],
                reference=float(np.median(res["reference"])), pairs=int(len(idx)))
        ConvergenceFile().write(study.folder, per_set)
        return ConvergeResults(convergence=summary)

    def estimate(self, config, cal, schedule):
        # In this process: per pair the longest budget twice (the paper's objective, then
        # the minimax reference, unless the certify stage gives the reference), full batch, and a measurement per budget and of the
        # reference, on the training landscape of each set.
        steps = convergence.STEPS
        cp = min(config.get("converge_pairs") or 0, pairs_of(config))
        n_tr, batch = cal["n_train"], config.get("path_batch")
        full_step = cal["path_step"] * n_tr / min(batch or n_tr, n_tr)
        runs = 1 if certified_reference(config) else 2
        seconds = len(SETS) * cp * (runs * max(steps) * full_step
                                    + (len(steps) + 1) * cal["path_measure"])
        return [("converge", "path convergence", seconds)]


STAGE = ConvergeStage()
