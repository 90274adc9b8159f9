"""Stage 2: kernel PCA of each pair of sets and kernel, the separation along PC1 and
against the RBF bandwidth, and the sets' geometry."""

from __future__ import annotations

import numpy as np

from ...geometry import bandwidth_sweep, centroid_distances, separation, set_geometry
from ...kpca import KernelPCA
from .. import report
from ..files import EmbeddingFile
from ..layout import COMBOS, KERNELS, SETS
from ..results import EmbedResults
from .base import Stage


class EmbedStage(Stage):
    name = "embed"
    command_help = "stage 2: kernel PCA and the geometry of the sets"
    requires = ("train",)
    results = EmbedResults
    report_sections = ((60, report.kpca_section), (61, report.bandwidth_section))

    def produces(self):
        return [EmbeddingFile().name]

    def run(self, study):
        sets = study.sets()
        embeddings, seps, dists = {}, {}, {}
        for a, b in COMBOS:
            X = np.concatenate([sets[a], sets[b]])
            for kernel in KERNELS:
                emb = KernelPCA(2, kernel=kernel).fit_transform(X)
                embeddings[(a, b, kernel)] = emb
                seps[f"{a}|{b}|{kernel}"] = separation(emb[: len(sets[a])], emb[len(sets[a]):])
        for a, b in (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test")):
            da, db = centroid_distances(sets[a], sets[b])
            dists[a], dists[b] = da.tolist(), db.tolist()
        # The separation against the RBF bandwidth, and the sets' scales beside it.
        sweep = {f"{a}|{b}": bandwidth_sweep(sets[a], sets[b]) for a, b in COMBOS}
        scales = {name: set_geometry(sets[name]) for name in SETS}
        EmbeddingFile().write(study.folder, embeddings)
        study.log.info("embed: PC1 separation (AUC) %s",
                       {k: round(v["auc"], 3) for k, v in seps.items()})
        return EmbedResults(separation=seps, centroid_distances=dists, bandwidth=sweep,
                            set_geometry=scales)


STAGE = EmbedStage()
