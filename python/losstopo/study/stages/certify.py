"""Certified barriers (not in the paper): the first pairs of each set's paths, each
path refined from the straight line (its curve by L-BFGS, then a nudged elastic band)
and, where a barrier remains, its highest point driven to a saddle and the saddle
checked (losstopo.saddles.certify), so that each barrier is reported with what it
is: certified, barrier-free, or a bound with the reason."""

from __future__ import annotations

import numpy as np

from ...paths import barrier_matrix
from ...saddles import STATUSES
from .. import report
from ..config import StudyError
from ..files import PathsFile
from ..layout import path_files
from ..results import CertifyResults
from ..settings import Setting
from .base import Stage
from .paths import chunked, pairs_of, path_kwargs

# The curve's L-BFGS iterations and the band's budget per phase (relaxed, then
# climbing): on 10,000 MNIST images an FCP pair of L-BFGS minima is barrier-free after
# 100 curve iterations, a band of the paper's M = 50 images after about 70.
CURVE_ITERS = 100
NEB_ITERS = 200


def certify_options(config: dict, plain: dict = None, k: int = 0) -> dict:
    """certify()'s options in the study: the band has the paths' M images; with the
    paths stage's record ``plain`` of the k pairs, the barrier-free tolerance is 1e-3
    of their median rise on the paper's path (certify's own default would take it
    from the straight line the stage starts from, whose rise is up to 100x larger)."""
    out = dict(n_images=config["n_points"], curve_iters=CURVE_ITERS, neb_iters=NEB_ITERS)
    if plain is not None and k:
        for key in ("barrier_rel", "barrier"):
            v = np.asarray(plain[key][:k], dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size and np.median(v) > 0:
                out["barrier_tol"] = float(1e-3 * np.median(v))
                break
    return out


def summarize(d: dict, plain: dict, k: int) -> dict:
    """The certify stage's numbers of one set and landscape: how many pairs ended in
    each status, and the medians of the certified (or bounding) barriers beside the
    paper's fixed-budget ones of the same pairs."""
    done = d["done"]
    status = d["cert_status"][done]
    counts = {s: int(np.sum(status == s)) for s in STATUSES}

    def med(a):
        a = np.asarray(a, dtype=np.float64)
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else float("nan")

    reasons = sorted({str(r).split(":")[0].split(" (")[0] for r, s in
                      zip(d["cert_reason"][done], status) if s == "bound only" and r})
    return dict(pairs=int(done.sum()), counts=counts,
                barriers=[float(x) for x in d["cert_barrier"][done]],
                statuses=[str(x) for x in status],
                median=med(d["cert_barrier"][done]),
                median_rel=med(d["cert_barrier_rel"][done]),
                median_paper=med(plain["barrier"][:k][done]),
                median_paper_refined=med(plain["barrier_refined"][:k][done]),
                median_gradients=med(d["cert_gradients"][done]),
                median_hessian_vector=med(d["cert_hessian_vector"][done]),
                reasons=reasons)


class CertifyStage(Stage):
    name = "certify"
    command = "paths"
    requires = ("paths",)
    asked_by = "certify_pairs"
    settings = (Setting(
        "certify_pairs", "opt_int", dict(quick=1, medium=6, paper=20), minimum=0,
        torch_quick=None, flag="certify-pairs", stage="certify", later=None,
        help="pairs per set and landscape whose barriers are certified: the path refined "
        "to a minimum-energy path and its highest point to a checked saddle (0: none)"),)
    results = CertifyResults
    report_sections = ((25, report.certified_section),)

    def produces(self):
        return [PathsFile(name, lname, certified=True).name for name, lname, _ in path_files()]

    def run(self, study):
        c = study.config
        sets = study.sets()
        train_ls, test_ls = study.landscapes()
        summary = {}
        for name, lname, _ in path_files():
            ls = train_ls if lname == "train" else test_ls
            plain = PathsFile(name, lname).read(study.folder)
            k = min(c["certify_pairs"], len(plain["pairs"]))
            if not plain["done"][:k].all():
                raise StudyError(f"{study.out}: the paths stage has not finished (run "
                                 f"`losstopo paths --out {study.out}`)")
            f = PathsFile(name, lname, certified=True)
            study.log.info("certify: %s, %d pairs on the %s landscape", name, k, lname)
            study.folder.own(f.name)
            if study.folder.exists(f.name):  # to be continued: sealed and whole
                f.read(study.folder, partial=True)
            # from the straight line (steps=0): certify's own curve refinement (L-BFGS)
            # replaces the paper's Adam steps, whose barrier the paths file holds
            kw = dict(path_kwargs(c, ls), steps=0)
            kw.pop("batch_size", None)
            res = barrier_matrix(ls, sets[name], pairs=plain["pairs"][:k], seed=c["seed"],
                                 out=study.path(f.name), progress=not study.quiet,
                                 client=study.client, certify=certify_options(c, plain, k),
                                 **kw)
            study.folder.record(f.name)
            summary[f"{name}@{lname}"] = summarize(res, plain, k)
        return CertifyResults(certified=summary)

    def estimate(self, config, cal, schedule):
        # Per pair: the curve's L-BFGS iterations (CURVE_ITERS, measured on FCP pairs
        # at about 1.5 Adam steps each: a line search's trials) and its measurement;
        # where a barrier remains, the band's iterations cost about 3 path steps each
        # (not counted: on the measured pairs the curve alone was barrier-free).
        cp = min(config.get("certify_pairs") or 0, pairs_of(config))
        if not cp:
            return [("certify", "certified barriers", 0.0)]
        total = 0.0
        for _, lname, _ in path_files():
            n = cal["n_train"] if lname == "train" else cal["n_test"]
            step = cal["path_step"] * n / cal["n_train"]
            pair = 1.5 * CURVE_ITERS * step + 2 * cal["path_measure"] * n / cal["n_train"]
            total += schedule(chunked(cp, pair))
        return [("certify", "certified barriers", total)]


STAGE = CertifyStage()
