"""Stage 1: the SGD and L-BFGS-GSS populations, resumable run by run, and the four
solution sets of their best runs."""

from __future__ import annotations

import time

import numpy as np

from ...geometry import weight_stats
from ...train import train
from .. import report
from ..config import StudyError, network
from ..files import CheckpointFile, EnsembleFile, SetsFile
from ..layout import METHODS
from ..results import NoResults, TrainResults
from .base import Stage


class TrainStage(Stage):
    name = "train"
    command_help = "stage 1: SGD and L-BFGS populations and the four solution sets"
    configures = True
    results = TrainResults
    report_sections = ((10, report.tables_section),)

    def produces(self):
        return ([EnsembleFile(m).name for m in METHODS] + [CheckpointFile(m).name
                                                           for m in METHODS]
                + [SetsFile.name])

    @staticmethod
    def trained(study, method) -> bool:
        return study.done(f"train_{method}") and study.folder.exists(EnsembleFile(method).name)

    def done(self, study) -> bool:
        return (study.done("train") and study.folder.exists(SetsFile.name)
                and all(self.trained(study, m) for m in METHODS))

    def run(self, study):
        c = study.config
        # The inputs first: a finished population's file is checked before the other
        # population trains (not found broken after hours), and the data's sizes.
        for method in METHODS:
            if self.trained(study, method):
                EnsembleFile(method).read(study.folder)
        net = network(c["network"])
        train_ls, test_ls = study.landscapes()
        # Independent initializations for the two optimizers, as in the paper.
        seeds = {"sgd": 2 * c["seed"], "lbfgs": 2 * c["seed"] + 1}
        for method, epochs in (("sgd", c["sgd_epochs"]), ("lbfgs", c["lbfgs_iters"])):
            if self.trained(study, method):
                continue
            target, checkpoint = EnsembleFile(method).name, CheckpointFile(method).name
            study.folder.own(checkpoint, target)
            study.log.info("train: %s, %d runs, %d %s", method, c["runs"], epochs,
                           "epochs" if method == "sgd" else "iterations")
            if study.client is not None and not c["train_group"]:
                study.log.info("train: in this process, all runs in one batch (set "
                               "--train-group to spread training over the cluster)")
            t = time.perf_counter()
            try:
                ens = train(net, train_ls, test_ls, method=method, runs=c["runs"],
                            seed=seeds[method], epochs=epochs, lr=c["lr"],
                            batch_size=c["batch_size"], checkpoint=study.path(checkpoint),
                            progress=not study.quiet, group=c["train_group"],
                            client=study.client if c["train_group"] else None)
            except ValueError as e:
                if "checkpoint" not in str(e):
                    raise
                raise StudyError(str(e)) from e
            ens.save(study.path(target))
            study.folder.record(target)
            if study.folder.exists(checkpoint):
                study.folder.record(checkpoint)
            study.log.info("train: %s finished in %.1f s", method, time.perf_counter() - t)
            study.finish(f"train_{method}", NoResults())
        sgd = EnsembleFile("sgd").read(study.folder).select(c["keep"])
        lb = EnsembleFile("lbfgs").read(study.folder).select(c["keep"])
        sets = {"SGD-train": sgd.theta_best_train, "SGD-test": sgd.theta_best_test,
                "LBFGS-train": lb.theta_best_train, "LBFGS-test": lb.theta_best_test}
        SetsFile().write(study.folder, sets)
        table1 = dict(
            train_lbfgs=float(np.mean(lb.best_train_loss)),
            train_sgd=float(np.mean(sgd.best_train_loss)),
            test_lbfgs=float(np.nanmean(lb.best_test_loss)),
            test_sgd=float(np.nanmean(sgd.best_test_loss)),
        )
        stats = {k: weight_stats(v) for k, v in sets.items()}
        return TrainResults(table1=table1, weight_stats=stats)

    def estimate(self, config, cal, schedule):
        c = config
        R = c["runs"]
        group = c.get("train_group") or R
        groups = [min(group, R - g0) for g0 in range(0, R, group)]
        sgd = schedule([g * c["sgd_epochs"] * cal["sgd_epoch_per_run"] for g in groups])
        lbfgs = schedule([g * c["lbfgs_iters"] * cal["lbfgs_iter_per_run"] for g in groups])
        return [("sgd", "SGD population", sgd), ("lbfgs", "L-BFGS-GSS population", lbfgs)]


STAGE = TrainStage()
