"""One class per study file: its name, its arrays' names, how it is written and how it
is read back with its checks. Every stage writes and reads its files through these
(no array name is spelled anywhere else)."""

from __future__ import annotations

from .config import StudyError
from .layout import (COMBOS, FIGURE_FORMATS, KERNELS, OPTIMIZERS, SETS, aligned_file,
                     certified_file, embedding_key, set_key)

REPORT = "report.md"


class StudyFile:
    """A study's .npz file. ``command``: the CLI command that makes it (named in the
    messages of a missing or broken file)."""

    name: str = ""
    command: str = ""

    def check(self, d: dict) -> None:
        """Raises ValueError unless ``d`` holds this file's arrays."""

    def read(self, folder) -> dict:
        return folder.load(self.name, self.command, self.check)

    def write(self, folder, arrays: dict) -> None:
        folder.write(self.name, "npz", arrays)


class EnsembleFile(StudyFile):
    """ensemble_{method}.npz: a trained population (losstopo.ensemble.Ensemble)."""

    command = "train"

    def __init__(self, method: str):
        self.method = method
        self.name = f"ensemble_{method}.npz"

    def read(self, folder):
        from ..ensemble import Ensemble

        p = folder.verify(self.name, self.command)
        try:
            return Ensemble.load(p, sealed=folder.sealed(self.name))
        except (ValueError, OSError) as e:
            raise StudyError(f"{e}; delete it and run `losstopo train --out {folder.out}` to "
                             "train it again") from e


class CheckpointFile(StudyFile):
    """checkpoint_{method}.npz: a population's running state, written and read back by
    train() (sealed and keyed by its configuration there); bound to the study once the
    population has finished."""

    command = "train"

    def __init__(self, method: str):
        self.name = f"checkpoint_{method}.npz"


class SetsFile(StudyFile):
    """sets.npz: the four solution sets, (solutions, parameters) each."""

    name, command = "sets.npz", "train"
    keys = frozenset(set_key(k) for k in SETS)

    def check(self, d):
        if set(d) != self.keys:
            raise ValueError(f"arrays {sorted(d)}, expected {sorted(self.keys)}")
        shapes = {d[k].shape[1:] for k in self.keys if d[k].ndim == 2}
        if len(shapes) != 1 or any(d[k].ndim != 2 or len(d[k]) < 2
                                   or d[k].dtype.kind != "f" for k in self.keys):
            raise ValueError("expected four float arrays (runs, parameters) of one width")

    def write(self, folder, sets: dict) -> None:
        super().write(folder, {set_key(k): v for k, v in sets.items()})

    def read(self, folder) -> dict:
        if not folder.exists(self.name):
            raise StudyError(f"{folder.out}: the train stage has not finished "
                             f"(run `losstopo train --out {folder.out}`)")
        d = super().read(folder)
        return {k: d[set_key(k)] for k in SETS}


class EmbeddingFile(StudyFile):
    """embedding.npz (every pair of sets and kernel) or embedding_aligned.npz (the RBF
    kernel of the aligned solutions): (na + nb, 2) each."""

    command = "embed"

    def __init__(self, aligned: bool = False):
        self.aligned = aligned
        self.name = "embedding_aligned.npz" if aligned else "embedding.npz"
        self.kernels = ("rbf",) if aligned else KERNELS

    def key(self, a, b, kernel) -> str:
        return embedding_key(a, b, kernel)

    def read(self, folder, sets=None) -> dict:
        """The embeddings by (a, b, kernel), checked against the sets' sizes."""
        expected = {embedding_key(a, b, k): (a, b, k) for a, b in COMBOS for k in self.kernels}

        def check(d):
            if set(d) != set(expected):
                raise ValueError(f"arrays {sorted(d)[:8]}, expected {sorted(expected)}")
            for key, (a, b, _) in expected.items():
                if sets is not None and d[key].shape != (len(sets[a]) + len(sets[b]), 2):
                    raise ValueError(f"{key}: shape {d[key].shape}")

        d = folder.load(self.name, self.command, check)
        return {combo: d[key] for key, combo in expected.items()}

    def write(self, folder, embeddings: dict) -> None:
        """``embeddings``: {(a, b, kernel): array}."""
        super().write(folder, {embedding_key(*combo): v for combo, v in embeddings.items()})


class PathsFile(StudyFile):
    """paths_{set}_{landscape}.npz (or the aligned or certified pairs' file): written by
    paths.barrier_matrix pair chunk by pair chunk, read back with its checks."""

    command = "paths"
    required = ("barrier", "done", "losses")

    def __init__(self, name: str, landscape: str = "train", aligned: bool = False,
                 certified: bool = False):
        self.set, self.landscape, self.aligned = name, landscape, aligned
        self.certified = certified
        self.name = (aligned_file(name) if aligned else certified_file(name, landscape)
                     if certified else f"paths_{name}_{landscape}.npz")
        if certified:
            self.required = PathsFile.required + ("cert_status", "cert_barrier")

    def check(self, d):
        for k in self.required:
            if k not in d:
                raise ValueError(f"no array {k!r}")
        n = len(d["done"])
        if (d["done"].dtype != bool or d["barrier"].shape != (n,)
                or d["losses"].ndim != 2 or len(d["losses"]) != n):
            raise ValueError("arrays of inconsistent shapes or types")

    def read(self, folder, partial: bool = False) -> dict:
        """The file's arrays, bound to the study (written by barrier_matrix, sealed by
        it). ``partial``: a file that barrier_matrix has not finished (not recorded in
        the manifest yet) is read on its seal alone, to be continued."""
        if partial and folder.exists(self.name) and not folder.recorded(self.name):
            from .._io import load_sealed

            p = folder.path(self.name)
            try:
                d, _ = load_sealed(p, "barrier_matrix")
                self.check(d)
            except Exception as e:
                raise StudyError(f"{p}: unreadable or not the study's ({e}); delete it and "
                                 f"run `losstopo {self.command} --out {folder.out}` to make "
                                 "it again") from e
            return d
        return folder.load(self.name, self.command, self.check, kind="barrier_matrix")


class ConvergenceFile(StudyFile):
    """convergence.npz: per set, the barriers after each step budget and the minimax
    reference of the pairs followed (and which pairs)."""

    name, command = "convergence.npz", "paths"
    fields = ("barrier", "barrier_refined", "reference", "straight_barrier", "pairs")

    def write(self, folder, per_set: dict) -> None:
        """``per_set``: {set: {field: array}} for every field."""
        super().write(folder, {f"{set_key(name)}__{k}": v[k]
                               for name, v in per_set.items() for k in self.fields})


class CurvatureFile(StudyFile):
    """curvature.npz: per set the top Hessian eigenvalue, the trace and its standard
    error of each solution; per optimizer the spectral density at its best solution;
    per slice the loss (and accuracy) on its grid."""

    name, command = "curvature.npz", "curvature"
    sharpness = ("top", "trace", "trace_se")
    density = ("nodes", "weights", "grid", "density")

    def write(self, folder, sharpness: dict, densities: dict, slices: dict) -> None:
        """``sharpness``: {set: {top, trace, trace_se}}; ``densities``: {optimizer:
        SpectralDensity}; ``slices``: {label: Slice}."""
        arrays = {}
        for name, v in sharpness.items():
            for k in self.sharpness:
                arrays[f"{set_key(name)}__{k}"] = v[k]
        for opt, d in densities.items():
            for k in self.density:
                arrays[f"density__{opt}__{k}"] = getattr(d, k)
        for label, sl in slices.items():
            arrays[f"slice__{label}__loss"] = sl.loss
            if sl.accuracy is not None:
                arrays[f"slice__{label}__accuracy"] = sl.accuracy
            arrays[f"slice__{label}__xs"], arrays[f"slice__{label}__ys"] = sl.xs, sl.ys
        super().write(folder, arrays)

    def read(self, folder, sets=(), slices=()) -> dict:
        """{"sharpness": {set: {top, trace}}, "density": {optimizer: arrays},
        "slices": {label: {loss, accuracy (or None), xs, ys}}}, for the sets and
        slices named (checked to be there)."""
        want = {f"{set_key(n)}__{k}" for n in sets for k in ("top", "trace")}
        want |= {f"slice__{lb}__{k}" for lb in slices for k in ("loss", "xs", "ys")}

        def check(d):
            missing = sorted(want - set(d))
            if missing:
                raise ValueError(f"no arrays {missing[:4]}")

        d = folder.load(self.name, self.command, check)
        out = dict(sharpness={n: {k: d[f"{set_key(n)}__{k}"] for k in ("top", "trace")}
                              for n in sets},
                   density={}, slices={})
        for opt in OPTIMIZERS:
            if f"density__{opt}__grid" in d:
                out["density"][opt] = {k: d[f"density__{opt}__{k}"] for k in self.density}
        for lb in slices:
            out["slices"][lb] = dict(loss=d[f"slice__{lb}__loss"], xs=d[f"slice__{lb}__xs"],
                                     ys=d[f"slice__{lb}__ys"],
                                     accuracy=d.get(f"slice__{lb}__accuracy"))
        return out


def figure_names(stem: str) -> list:
    """figures/<stem>.<ext> for every format the study writes."""
    return [f"figures/{stem}.{ext}" for ext in FIGURE_FORMATS]

