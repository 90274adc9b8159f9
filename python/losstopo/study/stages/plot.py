"""Stage 5: every figure from the study's files and results, and report.md. It runs on
every run (after whatever else ran), drawing what the finished stages left."""

from __future__ import annotations

import os

import numpy as np

from .. import report
from ..files import (REPORT, CurvatureFile, EmbeddingFile, EnsembleFile, PathsFile,
                     figure_names)
from ..layout import COMBOS, KERNELS, LEVEL_STEMS, SETS, SLICES, embedding_key, path_files
from ..results import (ConvergeResults, CurvatureResults, EmbedResults, PlotResults,
                       VerdictsResults)
from .base import Stage
from .map import networks as map_networks


def figure_stems() -> list:
    """The stem of every figure the study can draw."""
    stems = ["fig2_loss_curves", "fig3_toy_lambdas", "fig3_toy_paths"]
    for lname in ("train", "test"):
        stems += [f"fig4_barriers_{lname}{LEVEL_STEMS[lv]}" for lv in LEVEL_STEMS]
        stems.append(f"loss_profiles_{lname}")
    stems += ["fig5_distances_train", "fig5_distances_test"]
    stems += [f"fig6_kpca_{embedding_key(a, b, k)}" for a, b in COMBOS for k in KERNELS]
    stems.append("fig6_kpca_bandwidth")
    stems.append("path_convergence")
    stems.append("disconnectivity")
    stems += ["sharpness_top", "sharpness_trace", "hessian_density"]
    stems += [f"slice_{label}" for label in SLICES] + ["slice_surface_SGD", "slice_surface_LBFGS"]
    return stems


class PlotStage(Stage):
    name = "plot"
    command_help = "stage 5: figures and report.md"
    requires = ("train",)
    after = "*"
    always = True
    results = PlotResults
    report_sections = ((70, report.toy_section), (71, report.curves_section))

    def produces(self):
        names = [REPORT]
        for stem in figure_stems():
            names += figure_names(stem)
        return names

    def run(self, study):
        from ... import plots
        from ...analytic import toy_gaussians
        from ...toy import curve_families, lambda_paths, objective_paths

        # Every input is read and checked before the first figure is drawn.
        folder = study.folder
        ens = {"SGD": EnsembleFile("sgd").read(folder), "LBFGS": EnsembleFile("lbfgs").read(folder)}
        # (the paths of a stage still under way too: a file barrier_matrix is filling)
        paths = {(name, lname): PathsFile(name, lname).read(folder, partial=True)
                 for name, lname, fname in path_files() if folder.exists(fname)}
        emb = sets = None
        if folder.exists(EmbeddingFile().name):
            sets = study.sets()
            emb = EmbeddingFile().read(folder, sets)
        written = []

        def figure(fig, stem):
            written.extend(study.figure(fig, stem))

        figure(plots.plot_loss_curves(ens), "fig2_loss_curves")
        toy_paths, toy_summary = lambda_paths()
        figure(plots.plot_toy_lambdas(toy_gaussians(), toy_paths), "fig3_toy_lambdas")
        figure(plots.plot_landscape_paths(toy_gaussians(), objective_paths()), "fig3_toy_paths")
        intervals = VerdictsResults.of(study.manifest["results"]).intervals or {}
        bar_iv = intervals.get("barriers") or {}
        for lname in ("train", "test"):
            bars, profiles = {lv: {} for lv in LEVEL_STEMS}, {}
            for name in SETS:
                d = paths.get((name, lname))
                if d is not None:
                    for lv in LEVEL_STEMS:
                        if lv in d:
                            bars[lv][name] = d[lv][d["done"]]
                    if d["done"].any():
                        i = int(np.argmax(d["done"]))
                        profiles[name] = (np.linspace(0, 1, d["losses"].shape[1]), d["losses"][i])
            for lv, stem in LEVEL_STEMS.items():
                if bars[lv]:
                    iv = {n: bar_iv[f"{n}@{lname}"][lv] for n in bars[lv]
                          if lv in bar_iv.get(f"{n}@{lname}", {})}
                    figure(plots.plot_barrier_histograms(bars[lv], log=lv == "barrier", level=lv,
                                                         intervals=iv),
                           f"fig4_barriers_{lname}{stem}")
            if profiles:
                figure(plots.plot_loss_profiles(profiles), f"loss_profiles_{lname}")
        results = study.manifest["results"]
        embedded = EmbedResults.of(results)
        dists = embedded.centroid_distances or {}
        for kind in ("train", "test"):
            sel = {k: dists[k] for k in SETS if k.endswith(kind) and k in dists}
            if sel:
                civ = intervals.get("centroid") or {}
                figure(plots.plot_distance_histograms(sel, {k: civ[k] for k in sel if k in civ}),
                       f"fig5_distances_{kind}")
        if emb is not None:
            for a, b in COMBOS:  # names from the code's own lists, never from the file
                na = len(sets[a])
                for kernel in KERNELS:
                    E = emb[(a, b, kernel)]
                    figure(plots.plot_embedding({a: E[:na], b: E[na:]},
                                                title=f"{kernel} kernel PCA"),
                           f"fig6_kpca_{embedding_key(a, b, kernel)}")
        conv = ConvergeResults.of(results).convergence
        if conv:
            refined = report.certified_of(conv, results.get("certified") or {})
            figure(plots.plot_convergence({k: dict(conv[k], refined=refined.get(k, (None,))[0])
                                           for k in SETS if k in conv}),
                   "path_convergence")
        nets = map_networks(study)
        if nets:
            figure(plots.plot_disconnectivity(nets), "disconnectivity")
        curv = CurvatureResults.of(results)
        if study.done("curvature") and curv.curvature:
            self._curvature_figures(study, plots, curv, figure,
                                    intervals.get("sharpness") or {})
        sweep = embedded.bandwidth
        if sweep:
            bw = intervals.get("bandwidth") or {}
            figure(plots.plot_bandwidth({f"{a} + {b}": sweep[f"{a}|{b}"] for a, b in COMBOS
                                         if f"{a}|{b}" in sweep},
                                        {f"{a} + {b}": bw[f"{a}|{b}"] for a, b in COMBOS
                                         if f"{a}|{b}" in bw}), "fig6_kpca_bandwidth")
        study.log.info("plot: %d files in %s", len(written), os.path.join(study.out, "figures"))
        return PlotResults(figures=written, toy=toy_summary, curves=curve_families())

    def finished(self, study):
        study.report()  # from the results just recorded, the figures' list among them

    @staticmethod
    def _curvature_figures(study, plots, curv, figure, sharp):
        """Sharpness histograms (``sharp``: each set's median top eigenvalue with its
        interval), the spectral densities and the slices, from curvature.npz (checked
        against the stage's own names)."""
        from ...curvature import SpectralDensity
        from ...slices import Slice

        names = [n for n in SETS if n in curv.curvature]
        labels = list(curv.slices or {})
        d = CurvatureFile().read(study.folder, names, labels)
        tops = {n: d["sharpness"][n]["top"] for n in names}
        traces = {n: d["sharpness"][n]["trace"] for n in names}
        figure(plots.plot_histograms(tops, "largest Hessian eigenvalue",
                                     "sharpness of the solutions", log=True,
                                     intervals={n: sharp[n] for n in tops if n in sharp}),
               "sharpness_top")
        figure(plots.plot_histograms(traces, "Hessian trace (Hutchinson)",
                                     "sharpness of the solutions"), "sharpness_trace")
        dens = {opt: SpectralDensity(v["nodes"], v["weights"], v["grid"], v["density"], 0.0, 0)
                for opt, v in d["density"].items() if opt in (curv.hessian_density or {})}
        if dens:
            figure(plots.plot_spectral_density(dens), "hessian_density")
        for label in SLICES:  # the code's order, never the manifest's
            info = (curv.slices or {}).get(label)
            if info is None:
                continue
            marks = {k: tuple(v) for k, v in info["marks"].items()}
            if label == "plane":  # the plane's three solutions, by their sets
                marks = dict(zip(("SGD 1st", "SGD 2nd", "L-BFGS 1st"), marks.values()))
            a = d["slices"][label]
            sl = Slice(None, None, a["xs"], a["ys"], a["loss"], a["accuracy"], marks, info["kind"])
            title = (f"best {label} solution, filter-normalized directions" if label != "plane"
                     else "the plane of two SGD and one L-BFGS solution")
            figure(plots.plot_slice(sl, title=title), f"slice_{label}")
            if label != "plane":
                figure(plots.plot_slice_surface(sl, title=title), f"slice_surface_{label}")


STAGE = PlotStage()
