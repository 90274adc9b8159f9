"""The stages' results: the numbers each stage leaves in the manifest (under
``results``, one key per field) for the report, the figures and later stages. One
typed record per stage; the manifest's keys are its field names."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional


@dataclass
class Results:
    """A stage's results; a field left None is not written (and reads as None)."""

    def to_manifest(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def keys(cls) -> tuple:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, results: dict):
        """This stage's results as the manifest holds them (None where absent)."""
        return cls(**{k: results.get(k) for k in cls.keys()})


@dataclass
class NoResults(Results):
    """A stage that leaves files only."""


@dataclass
class TrainResults(Results):
    table1: Optional[dict] = None  # mean best train/test loss of the kept runs
    weight_stats: Optional[dict] = None  # per set: (mean, std) of all weights


@dataclass
class EmbedResults(Results):
    separation: Optional[dict] = None  # "a|b|kernel": PC1 separation (AUC, ...)
    centroid_distances: Optional[dict] = None  # per set: distances to its centroid
    bandwidth: Optional[dict] = None  # "a|b": the separation against the RBF bandwidth
    set_geometry: Optional[dict] = None  # per set: norms and mutual distances


@dataclass
class PathsResults(Results):
    barriers: Optional[dict] = None  # "set@landscape": medians, quartiles, pairs


@dataclass
class ConvergeResults(Results):
    convergence: Optional[dict] = None  # per set: median barrier per step budget


@dataclass
class CertifyResults(Results):
    certified: Optional[dict] = None  # "set@landscape": statuses, certified medians


@dataclass
class MapResults(Results):
    map: Optional[dict] = None  # per view (raw, aligned): the network's summary, history


@dataclass
class AlignResults(Results):
    alignment: Optional[dict] = None  # per set: aligned against unaligned barriers
    aligned_separation: Optional[dict] = None  # "a|b|rbf": separation after alignment


@dataclass
class CurvatureResults(Results):
    curvature: Optional[dict] = None  # per set: top eigenvalues, traces
    hessian_density: Optional[dict] = None  # per optimizer: the density's summary
    slices: Optional[dict] = None  # per slice: kind, marks, loss range


@dataclass
class VerdictsResults(Results):
    claims: Optional[list] = None  # every claim: effect, interval, p, verdict (claims.py)
    intervals: Optional[dict] = None  # the intervals the tables and figures show


@dataclass
class PlotResults(Results):
    figures: Optional[list] = None  # the figure files written
    toy: Optional[dict] = None  # the 2-D toy landscape's paths
    curves: Optional[dict] = None  # the curve families on the toy landscape
