"""The claims' stage: every claim of the report decided with its uncertainty, from
the files the other stages left (claims.evaluate). It runs on every run, after every
other stage but the figures, so its verdicts follow whatever has finished."""

from __future__ import annotations

import numpy as np

from .. import claims
from ..files import CurvatureFile, EnsembleFile, PathsFile
from ..layout import SETS, path_files
from ..results import CurvatureResults, EmbedResults, VerdictsResults
from .base import Stage
from .map import SETS as MAP_SETS
from .map import networks as map_networks


def gather(study) -> dict:
    """The numbers every claim needs, as claims.evaluate takes them, from the study's
    files (each read through its checks) and results; what has not been made is left
    out, so its claims are not tested."""
    c, folder, results = study.config, study.folder, study.manifest["results"]
    data = {}
    ens = {opt: EnsembleFile(m).read(folder).select(c["keep"])
           for opt, m in (("SGD", "sgd"), ("LBFGS", "lbfgs"))}
    data["losses"] = {opt: {"train": np.asarray(e.best_train_loss, np.float64),
                            "test": np.asarray(e.best_test_loss, np.float64)}
                      for opt, e in ens.items()}
    sets = study.sets()
    data["moments"] = {k: np.stack([v.astype(np.float64).mean(1),
                                    np.square(v.astype(np.float64)).mean(1)], 1)
                       for k, v in sets.items()}
    if study.done("embed"):
        data["sets"] = sets
        data["centroid"] = {k: np.asarray(v, np.float64) for k, v in
                            (EmbedResults.of(results).centroid_distances or {}).items()}
    bars = {}
    for name, lname, fname in path_files():
        if folder.exists(fname):
            d = PathsFile(name, lname).read(folder, partial=True)
            done = d["done"]
            if done.any():
                bars[f"{name}@{lname}"] = dict(
                    pairs=d["pairs"][done],
                    **{lv: d[lv][done] for lv, _ in claims.LEVELS if lv in d})
    data["barriers"] = bars
    aligned = {}
    for name in SETS:
        f = PathsFile(name, aligned=True)
        if study.done("align") and folder.exists(f.name):
            d = f.read(folder)
            aligned[name] = dict(pairs=d["pairs"][d["done"]], barrier=d["barrier"][d["done"]])
    data["aligned"] = aligned
    certified = {}
    for name, lname, _ in path_files():
        f = PathsFile(name, lname, certified=True)
        if study.done("certify") and folder.exists(f.name):
            d = f.read(folder)
            certified[f"{name}@{lname}"] = dict(pairs=d["pairs"][d["done"]],
                                                barrier=d["cert_barrier"][d["done"]])
    data["certified"] = certified
    data["map"] = map_joins(study)
    curv = CurvatureResults.of(results)
    if study.done("curvature") and curv.curvature:
        names = [n for n in SETS if n in curv.curvature]
        d = CurvatureFile().read(folder, names)
        data["sharpness"] = {n: np.asarray(d["sharpness"][n]["top"], np.float64)
                             for n in names}
    return data


def map_joins(study) -> dict:
    """Per view of the map of minima and per training set: the join level of every pair
    of the set's minima (the lowest barrier through the network) and the pairs."""
    out = {}
    for view, net in map_networks(study).items():
        J = net.join_levels()
        out[view] = {}
        for name in MAP_SETS:
            idx = np.flatnonzero(np.asarray(net.labels) == name)
            i, j = np.triu_indices(len(idx), 1)
            out[view][name] = dict(pairs=np.stack([i, j], 1), join=J[idx[i], idx[j]])
    return out


class VerdictsStage(Stage):
    name = "verdicts"
    command = "plot"
    command_help = "stage 5: figures and report.md"
    requires = ("train",)
    after = "*"
    always = True
    results = VerdictsResults

    def run(self, study):
        found, intervals = claims.evaluate(study.config["network"], gather(study),
                                           seed=study.config["seed"])
        sampled = [r for r in found if r.get("key") != "toy"]
        counts = {v: sum(r["verdict"] == v for r in sampled)
                  for v in ("held", "contradicted", "inconclusive", claims.NOT_TESTED)}
        study.log.info("verdicts: %s (the toy landscape's %d claims are decided with the "
                       "figures)", ", ".join(f"{n} {v}" for v, n in counts.items()),
                       len(found) - len(sampled))
        return VerdictsResults(claims=found, intervals=intervals)


STAGE = VerdictsStage()
