"""Permutation alignment (not in the paper): the first pairs of each set found again
with the second endpoint permuted to match the first (weight matching), beside the same
pairs unaligned; kernel PCA of the solutions aligned to a common reference."""

from __future__ import annotations

import numpy as np

from ...align import align_to_common
from ...geometry import separation
from ...kpca import KernelPCA
from ...paths import barrier_matrix
from .. import report
from ..config import StudyError, network
from ..files import EmbeddingFile, PathsFile
from ..layout import COMBOS, SETS
from ..results import AlignResults
from .base import Stage
from .paths import chunked, pair_seconds, pairs_of, path_kwargs


class AlignStage(Stage):
    name = "align"
    command = "paths"
    requires = ("paths",)
    asked_by = "align_pairs"
    results = AlignResults
    report_sections = ((40, report.alignment_section),)

    def produces(self):
        return [PathsFile(name, aligned=True).name for name in SETS] + [
            EmbeddingFile(aligned=True).name]

    def run(self, study):
        c = study.config
        sets = study.sets()
        train_ls, _ = study.landscapes()
        # an MLP's hidden units, or a torch network's groups derived from its module
        net = network(c["network"]) or train_ls
        kw = path_kwargs(c, train_ls)
        summary = {}
        for name in SETS:
            plain = PathsFile(name).read(study.folder)
            k = min(c["align_pairs"], len(plain["pairs"]))
            pairs = plain["pairs"][:k]
            if not plain["done"][:k].all():
                raise StudyError(f"{study.out}: the paths stage has not finished (run "
                                 f"`losstopo paths --out {study.out}`)")
            study.log.info("align: %s, %d pairs aligned on the train landscape", name, k)
            fname = PathsFile(name, aligned=True).name
            study.folder.own(fname)
            if study.folder.exists(fname):  # to be continued: sealed and whole
                PathsFile(name, aligned=True).read(study.folder, partial=True)
            res = barrier_matrix(train_ls, sets[name], pairs=pairs, seed=c["seed"],
                                 out=study.path(fname), progress=not study.quiet, align=True,
                                 client=study.client, **kw)
            study.folder.record(fname)
            summary[name] = dict(
                pairs=int(k), median=float(np.median(res["barrier"])),
                median_unaligned=float(np.median(plain["barrier"][:k])),
                median_rel=float(np.median(res["barrier_rel"])),
                median_rel_unaligned=float(np.median(plain["barrier_rel"][:k])),
                distance_before=float(np.median(res["distance_before"])),
                distance_after=float(np.median(res["distance_after"])))
        embeddings, seps = {}, {}
        for a, b in COMBOS:
            al = align_to_common(net, np.concatenate([sets[a], sets[b]])).theta
            emb = KernelPCA(2, kernel="rbf").fit_transform(al)
            embeddings[(a, b, "rbf")] = emb
            seps[f"{a}|{b}|rbf"] = separation(emb[: len(sets[a])], emb[len(sets[a]):])
        EmbeddingFile(aligned=True).write(study.folder, embeddings)
        return AlignResults(alignment=summary, aligned_separation=seps)

    def estimate(self, config, cal, schedule):
        # The first pairs of each set again on the training landscape (the weight
        # matching itself is negligible beside a path).
        ap = min(config.get("align_pairs") or 0, pairs_of(config))
        seconds = len(SETS) * schedule(chunked(ap, pair_seconds(config, cal, cal["n_train"]))
                                       ) if ap else 0.0
        return [("align", "aligned pairs", seconds)]


STAGE = AlignStage()
