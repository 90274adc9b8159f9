"""Curvature (not in the paper): the sharpness of the first solutions of each set on
the training landscape (top Hessian eigenvalue by batched Lanczos, Hutchinson trace
with its standard error), the spectral density at each optimizer's solution of lowest
training loss, and 2-D slices through those solutions and the plane of three."""

from __future__ import annotations

import numpy as np

from ... import curvature, slices as slices_mod
from .. import report
from ..files import CurvatureFile
from ..layout import OPTIMIZERS, SETS
from ..results import CurvatureResults
from .base import Stage

# The stage's workload (the estimate projects these same numbers).
LANCZOS_TOL, LANCZOS_STEPS = 1e-3, 100  # the sharpness' Lanczos runs
LANCZOS_STEPS_SEEN = 20  # Lanczos steps a sharpness run takes at LANCZOS_TOL (projection)
TRACE_PROBES, TRACE_BATCH = 32, 16  # Hutchinson probes per solution, per engine call
DENSITY_PROBES, DENSITY_STEPS = 4, 48  # stochastic Lanczos quadrature
SLICE_GRID = 51  # points per side of a slice when slice_grid is not set


class CurvatureStage(Stage):
    name = "curvature"
    command_help = ("stage 4: sharpness (Hessian eigenvalue, trace, spectral density) "
                    "of the solutions and 2-D slices of the landscape")
    requires = ("train",)
    asked_by = "curvature_solutions"
    results = CurvatureResults
    report_sections = ((50, report.curvature_section),)

    def produces(self):
        return [CurvatureFile.name]

    def run(self, study):
        c = study.config
        sets = study.sets()
        train_ls, _ = study.landscapes()
        if not hasattr(train_ls, "hessian_vector"):
            study.log.info("curvature: the %s landscape offers no Hessian-vector products",
                           c["network"])
            return CurvatureResults()
        study.folder.own(CurvatureFile.name)
        sharpness, summary = {}, {}
        for name in SETS:
            th = sets[name][: c["curvature_solutions"]].astype(np.float64)
            study.log.info("curvature: %s, top eigenvalue and trace of %d solutions", name,
                           len(th))
            top = curvature.sharpness(train_ls, th, tol=LANCZOS_TOL, max_steps=LANCZOS_STEPS,
                                      seed=c["seed"], progress=not study.quiet)
            traces = [curvature.hessian_trace(train_ls, t, probes=TRACE_PROBES,
                                              batch=TRACE_BATCH, seed=c["seed"]) for t in th]
            s = dict(top=top, trace=np.array([t for t, _ in traces]),
                     trace_se=np.array([e for _, e in traces]))
            sharpness[name] = s
            summary[name] = dict(solutions=int(len(th)), median_top=float(np.median(top)),
                                 median_trace=float(np.median(s["trace"])),
                                 median_trace_se=float(np.median(s["trace_se"])),
                                 top=[float(v) for v in top])
        # Each optimizer's train-set solutions, lowest training loss first.
        ranked = {opt: sets[f"{opt}-train"][np.argsort(train_ls.loss(sets[f"{opt}-train"]))]
                  for opt in OPTIMIZERS}
        densities, dens_summary = {}, {}
        for opt in OPTIMIZERS:  # at the solution of lowest training loss
            best = ranked[opt][0].astype(np.float64)
            d = curvature.spectral_density(train_ls, best, probes=DENSITY_PROBES,
                                           steps=DENSITY_STEPS, seed=c["seed"])
            densities[opt] = d
            dens_summary[opt] = dict(sigma=d.sigma, trace=d.trace, min=float(d.nodes.min()),
                                     max=float(d.nodes.max()))
        slices, slice_summary = {}, {}
        n = c["slice_grid"] or SLICE_GRID
        sgd, lbfgs = ranked["SGD"], ranked["LBFGS"]
        for label, kw in (("SGD", dict(theta=sgd[0], directions="filter")),
                          ("LBFGS", dict(theta=lbfgs[0], directions="filter")),
                          ("plane", dict(theta=None, directions="plane",
                                         solutions=np.stack([sgd[0], sgd[1], lbfgs[0]])))):
            study.log.info("curvature: %d x %d slice (%s)", n, n, label)
            theta = None if kw["theta"] is None else kw["theta"].astype(np.float64)
            sl = slices_mod.slice2d(train_ls, theta, kw["directions"], n=n, seed=c["seed"],
                                    solutions=kw.get("solutions"), progress=not study.quiet)
            slices[label] = sl
            slice_summary[label] = dict(
                kind=sl.kind, marks={k: list(v) for k, v in sl.marks.items()},
                min_loss=float(sl.loss.min()), max_loss=float(sl.loss.max()))
        CurvatureFile().write(study.folder, sharpness, densities, slices)
        return CurvatureResults(curvature=summary, hessian_density=dens_summary,
                                slices=slice_summary)

    def estimate(self, config, cal, schedule):
        # In this process: per set the sharpness (Lanczos runs of all its solutions at
        # once) and the Hutchinson probes of each solution; three slices. Calibrated only
        # when the configuration asks for the stage.
        c = config
        seconds = 0.0
        if c.get("curvature_solutions") and "hvp_per_point" in cal:
            S = min(c["curvature_solutions"], c["keep"])
            n = c.get("slice_grid") or SLICE_GRID
            seconds = (len(SETS) * S * (LANCZOS_STEPS_SEEN * cal["hvp_per_point"]
                                        + TRACE_PROBES * cal["hvp_shared"])
                       + 3 * n * n * cal["slice_point"])
        return [("curvature", "curvature", seconds)]


STAGE = CurvatureStage()
