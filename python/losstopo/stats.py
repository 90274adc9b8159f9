"""Statistics for verdicts: the effect of a comparison between two sets of solutions,
its confidence interval, its p-value and a verdict of three outcomes.

The unit of resampling is the *solution*, never the pair. Pairs of one set share
endpoints, so their barriers are not independent draws: a pair-level bootstrap is too
narrow when endpoints are shared. Values given per pair (``pairs=``) are resampled by
one of two schemes, whichever the design allows:

- ``clusters``: the pairs' graph (solutions joined by the pairs that link them) falls
  into connected components with no solution in common, which are independent of each
  other. Where every component is small (at least half as many components as pairs),
  the components are resampled whole. With disjoint pairs, every component is one
  pair, and this is the ordinary bootstrap of pairs, draw for draw.
- ``solutions``: otherwise (endpoints shared so much that the components are few)
  the solutions are resampled, and each pair counts once for every way its two
  endpoints were drawn (``k_i * k_j`` times; the bootstrap of a two-sample U-statistic).
  This is consistent when many pairs share each solution. Where the design is sparse
  it is conservative (its interval is wider than the truth).

Values given per solution are resampled solution by solution.

The machinery is scipy's: ``scipy.stats.bootstrap`` (percentile intervals) resamples
the units' indices; ``scipy.stats.permutation_test`` permutes whole units between the
two sets for the p-value. Where no permutation can be made (the ``solutions`` scheme:
pairs across the two sets were never measured; or a claim against a threshold), the
p-value is the bootstrap's: twice the smaller share of the bootstrap distribution on
either side of the null (with the usual +1 correction), so that p < 0.05 where the 95%
interval excludes the null, up to that correction at the edge.
Every draw comes from ``seed``, so every interval and p-value is reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats as _st

ALPHA = 0.05
LEVEL = 0.95
RESAMPLES = 2000
# permutations of a test: enough that its smallest p-value survives Holm's correction
# over a report's few dozen claims
PERMUTATIONS = 9999
VERDICTS = ("held", "contradicted", "inconclusive")
# the power a "pairs needed" estimate asks for
POWER = 0.8


@dataclass
class Comparison:
    """A statistic of set A minus the same statistic of set B (or of A minus a
    threshold), with its uncertainty.

    effect: the observed difference. low, high: its ``level`` interval (percentile
    bootstrap). se: the bootstrap standard error. p: two-sided p-value of "no
    difference"; ``test`` says how it was made. n_solutions / n_pairs: per set (pairs
    None for values per solution). scheme: "solutions", "clusters" or "fixed" (no
    sampling variation: a deterministic computation). dropped: values left out as not
    finite (failed pairs). reason: why the numbers cannot decide, "" if they can."""

    effect: float
    low: float
    high: float
    se: float
    p: float
    test: str
    n_solutions: tuple
    n_pairs: Optional[tuple] = None
    scheme: str = "solutions"
    level: float = LEVEL
    dropped: tuple = (0, 0)
    reason: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_solutions"] = list(self.n_solutions)
        d["n_pairs"] = None if self.n_pairs is None else list(self.n_pairs)
        d["dropped"] = list(self.dropped)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        d = dict(d)
        for k in ("n_solutions", "n_pairs", "dropped"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


# --- weighted statistics over resamples -----------------------------------------------

def weighted_median(values: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The median of each row's multiset: ``values`` (m,) each taken W[r, i] times
    (integer counts, rows (b, m)). Rows of total weight 0 give NaN."""
    order = np.argsort(values, kind="stable")
    v, Wo = values[order], W[..., order]
    c = np.cumsum(Wo, axis=-1)
    T = c[..., -1]
    lo_k = np.floor((T - 1) / 2.0)
    hi_k = np.floor(T / 2.0)
    # the element at 0-based position k of the expanded multiset: first index with c > k
    lo = v[np.minimum((c > lo_k[..., None]).argmax(axis=-1), len(v) - 1)]
    hi = v[np.minimum((c > hi_k[..., None]).argmax(axis=-1), len(v) - 1)]
    out = 0.5 * (lo + hi)
    return np.where(T > 0, out, np.nan)


def weighted_mean(values: np.ndarray, W: np.ndarray) -> np.ndarray:
    T = W.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(T > 0, (W * values).sum(axis=-1) / np.where(T > 0, T, 1), np.nan)


def pooled_std(values: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The standard deviation of all weights of the solutions drawn: ``values`` (m, 2),
    each solution's mean weight and mean squared weight (Table S1's statistic)."""
    m1 = weighted_mean(values[:, 0], W)
    m2 = weighted_mean(values[:, 1], W)
    return np.sqrt(np.maximum(m2 - m1 * m1, 0.0))


STATISTICS = {"median": weighted_median, "mean": weighted_mean, "pooled_std": pooled_std}


def _statistic(statistic) -> Callable:
    if callable(statistic):
        return statistic
    if statistic not in STATISTICS:
        raise ValueError(f"statistic: expected one of {sorted(STATISTICS)} or a function, "
                         f"got {statistic!r}")
    return STATISTICS[statistic]


# --- the designs: values grouped into resampling units --------------------------------

@dataclass
class _Design:
    """One set's values and how they hang on its resampling units: ``units`` units;
    ``weights(counts)`` turns draws of units (b, units) into the values' weights."""

    values: np.ndarray
    units: int
    weights: Callable
    scheme: str
    n_solutions: int
    n_pairs: Optional[int]
    dropped: int
    unit_of: Optional[np.ndarray] = None  # per value, its unit (where one unit holds it)


def _values(name: str, values, allow_2d: bool = False) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 and not (allow_2d and v.ndim == 2):
        raise ValueError(f"{name}: expected a 1-D array of values, got shape {v.shape}")
    return v


def _solutions_design(name: str, values) -> _Design:
    v = _values(name, values, allow_2d=True)
    ok = np.isfinite(v) if v.ndim == 1 else np.isfinite(v).all(axis=1)
    v = v[ok]
    unit = np.arange(len(v))
    return _Design(v, len(v), lambda C: C, "solutions", len(v), None, int((~ok).sum()), unit)


def components(pairs: np.ndarray) -> tuple:
    """(number of components, component of each pair) of the graph whose edges are the
    pairs (solutions joined by a pair of theirs)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs)
    if len(pairs) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    nodes, inv = np.unique(pairs.ravel(), return_inverse=True)
    e = inv.reshape(-1, 2)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(nodes), len(nodes)))
    n, label = connected_components(g, directed=False)
    # number the components in order of their first pair, so the design is canonical
    first = {}
    for lab in label[e[:, 0]]:
        first.setdefault(int(lab), len(first))
    comp = np.array([first[int(lab)] for lab in label[e[:, 0]]], dtype=np.int64)
    return len(first), comp


def _pairs_design(name: str, values, pairs, scheme: str = "auto") -> _Design:
    v = _values(name, values)
    P = np.asarray(pairs)
    if P.size == 0:  # no pairs at all (an empty list reads as floats)
        P = P.reshape(0, 2).astype(np.int64)
    if P.ndim != 2 or P.shape[1] != 2 or len(P) != len(v) or P.dtype.kind not in "iu":
        raise ValueError(f"{name}: pairs must be an integer array ({len(v)}, 2) beside its "
                         f"values, got {P.dtype} {P.shape}")
    if (P[:, 0] == P[:, 1]).any():
        raise ValueError(f"{name}: a pair joins a solution to itself")
    ok = np.isfinite(v)
    v, P = v[ok], P[ok]
    dropped = int((~ok).sum())
    sols, inv = np.unique(P.ravel(), return_inverse=True)
    e = inv.reshape(-1, 2)
    ncomp, comp = components(P)
    if scheme == "auto":
        scheme = "clusters" if ncomp >= max(2, 0.5 * len(v)) else "solutions"
    if scheme == "clusters":
        return _Design(v, ncomp, lambda C, c=comp: C[..., c], "clusters", len(sols), len(v),
                       dropped, comp)
    if scheme == "solutions":
        return _Design(v, len(sols), lambda C, e=e: C[..., e[:, 0]] * C[..., e[:, 1]],
                       "solutions", len(sols), len(v), dropped)
    raise ValueError(f"scheme: expected 'auto', 'clusters' or 'solutions', got {scheme!r}")


def _counts(idx: np.ndarray, units: int) -> np.ndarray:
    """Draws of unit indices (b, n) -> counts per unit (b, units)."""
    idx = np.asarray(idx, dtype=np.int64)
    flat = idx.reshape(-1, idx.shape[-1])
    b = flat.shape[0]
    offset = (np.arange(b, dtype=np.int64) * units)[:, None]
    C = np.bincount((flat + offset).ravel(), minlength=b * units).astype(np.float64)
    return C.reshape(idx.shape[:-1] + (units,))


def _rng(seed):
    return np.random.default_rng(seed)


def _bootstrap(stat_of_draws, units: tuple, n_resamples: int, seed) -> tuple:
    """scipy's percentile bootstrap over the units' indices of one or two samples:
    (low, high, distribution). Resamples where the statistic is undefined (a set drew
    no pair whose two endpoints it drew) are left out of the interval; the caller
    says so where they are more than a few."""
    import warnings

    data = tuple(np.arange(u) for u in units)

    def statistic(*idx, axis=-1):
        return stat_of_draws(*idx)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate data: reported as such by the caller
        res = _st.bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True,
                            method="percentile", confidence_level=LEVEL, rng=_rng(seed))
    d = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    ok = np.isfinite(d)
    if not ok.all() and ok.sum() >= 2:
        low, high = (float(x) for x in np.percentile(
            d[ok], [50 * (1 - LEVEL), 50 * (1 + LEVEL)]))
    return low, high, d


UNDEFINED = 0.05  # the share of resamples without a statistic beyond which none is given


def _undefined(dist: np.ndarray) -> str:
    bad = float(np.mean(~np.isfinite(dist)))
    return (f"{100 * bad:.0f}% of the bootstrap's resamples drew no pair with both of its "
            "solutions: too few solutions for the pairs" if bad > UNDEFINED else "")


def bootstrap_p(distribution: np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value of ``null`` from a bootstrap distribution: twice the smaller
    share at or beyond it on either side (with the usual +1 correction), at most 1."""
    d = distribution[np.isfinite(distribution)]
    if d.size == 0:
        return float("nan")
    below = (np.sum(d <= null) + 1) / (d.size + 1)
    above = (np.sum(d >= null) + 1) / (d.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def _reason(da: _Design, db: Optional[_Design], names: tuple) -> str:
    for d, n in ((da, names[0]), (db, names[1])):
        if d is None:
            continue
        left = f" ({d.dropped} of its values not finite)" if d.dropped else ""
        if d.n_solutions < 2:
            return f"{n}: fewer than 2 solutions" + left
        if d.n_pairs is not None and d.n_pairs < 2:
            return f"{n}: fewer than 2 pairs" + left
        if d.units < 2:
            return f"{n}: fewer than 2 independent units to resample"
    return ""


def _check_shape(d: _Design, statistic, name: str) -> None:
    """Values of the shape the named statistic takes: 1-D for median and mean, (n, 2)
    for pooled_std."""
    if callable(statistic):
        return
    if statistic == "pooled_std" and (d.values.ndim != 2 or d.values.shape[1] != 2):
        raise ValueError(f"{name}: pooled_std takes (n, 2) values (each solution's mean and "
                         f"mean squared weight), got shape {d.values.shape}")
    if statistic != "pooled_std" and d.values.ndim != 1:
        raise ValueError(f"{name}: {statistic} takes a 1-D array of values, got shape "
                         f"{d.values.shape}")


def _compare(da: _Design, db: _Design, statistic, n_resamples: int, seed,
             names=("A", "B"), permute: bool = True,
             permutations: int = PERMUTATIONS) -> Comparison:
    stat = _statistic(statistic)
    _check_shape(da, statistic, names[0])
    _check_shape(db, statistic, names[1])
    reason = _reason(da, db, names)
    n_sol = (da.n_solutions, db.n_solutions)
    n_pairs = (da.n_pairs, db.n_pairs) if da.n_pairs is not None else None
    scheme = da.scheme if da.scheme == db.scheme else f"{da.scheme}/{db.scheme}"
    if reason:
        return Comparison(float("nan"), float("nan"), float("nan"), float("nan"),
                          float("nan"), "none", n_sol, n_pairs, scheme,
                          dropped=(da.dropped, db.dropped), reason=reason)
    ones_a, ones_b = np.ones((1, da.units)), np.ones((1, db.units))
    effect = float(stat(da.values, da.weights(ones_a))[0] - stat(db.values, db.weights(ones_b))[0])

    def of_draws(ia, ib):
        return (stat(da.values, da.weights(_counts(ia, da.units)))
                - stat(db.values, db.weights(_counts(ib, db.units))))

    low, high, dist = _bootstrap(of_draws, (da.units, db.units), n_resamples, seed)
    se = float(np.nanstd(dist, ddof=1))
    p, test = bootstrap_p(dist), "bootstrap"
    if permute and da.unit_of is not None and db.unit_of is not None:
        p, test = _permutation_p(da, db, stat, permutations, seed), "permutation"
    reason = _undefined(dist)
    if np.all(dist == dist[0]) and np.isfinite(dist[0]) and effect == 0.0:
        reason = "no variation: every value is the same"
    return Comparison(effect, low, high, se, p, test, n_sol, n_pairs, scheme,
                      dropped=(da.dropped, db.dropped), reason=reason)


def _permutation_p(da: _Design, db: _Design, stat, n_resamples: int, seed) -> float:
    """scipy's permutation test of the two sets' labels, permuting whole units (each
    solution, or each cluster of pairs) between them."""
    na, nb = da.units, db.units
    values = np.concatenate([da.values, db.values])
    unit_of = np.concatenate([da.unit_of, db.unit_of + na])

    def statistic(ia, ib, axis=-1):
        Ca, Cb = _counts(ia, na + nb), _counts(ib, na + nb)
        return stat(values, Ca[..., unit_of]) - stat(values, Cb[..., unit_of])

    res = _st.permutation_test((np.arange(na), np.arange(na, na + nb)), statistic,
                               permutation_type="independent", vectorized=True,
                               n_resamples=n_resamples, alternative="two-sided",
                               rng=_rng(seed))
    return float(res.pvalue)


# --- the public comparisons -----------------------------------------------------------

def compare_solutions(a, b, statistic="median", n_resamples: int = RESAMPLES, seed=0,
                      names=("A", "B"), permutations: int = PERMUTATIONS) -> Comparison:
    """statistic(a) - statistic(b) for values per solution (1-D, or (n, k) for a
    statistic of several columns such as ``pooled_std``). NaN values are left out and
    counted. ``permutations``: of the permutation test that gives the p-value."""
    _check_resamples(n_resamples)
    _check_resamples(permutations, "permutations")
    return _compare(_solutions_design(names[0], a), _solutions_design(names[1], b),
                    statistic, n_resamples, seed, names, permutations=permutations)


def compare_pairs(a, pairs_a, b, pairs_b, statistic="median", n_resamples: int = RESAMPLES,
                  seed=0, scheme: str = "auto", names=("A", "B"),
                  permutations: int = PERMUTATIONS) -> Comparison:
    """statistic(a) - statistic(b) for values per pair of solutions: ``a`` (k,) with
    ``pairs_a`` (k, 2) the indices of each pair's endpoints in its set (likewise b).
    ``scheme``: "auto" (see the module's text), "clusters" or "solutions". NaN values
    (failed pairs) are left out and counted."""
    _check_resamples(n_resamples)
    _check_resamples(permutations, "permutations")
    return _compare(_pairs_design(names[0], a, pairs_a, scheme),
                    _pairs_design(names[1], b, pairs_b, scheme), statistic, n_resamples,
                    seed, names, permutations=permutations)


def against_threshold(a, threshold: float, statistic="median", pairs=None,
                      n_resamples: int = RESAMPLES, seed=0, name="A") -> Comparison:
    """statistic(a) - threshold, for values per solution or (with ``pairs``) per pair.
    Its p-value is the bootstrap's."""
    _check_resamples(n_resamples)
    d = _solutions_design(name, a) if pairs is None else _pairs_design(name, a, pairs)
    stat = _statistic(statistic)
    _check_shape(d, statistic, name)
    reason = _reason(d, None, (name, ""))
    n_pairs = None if d.n_pairs is None else (d.n_pairs,)
    if reason:
        return Comparison(*(float("nan"),) * 5, "none", (d.n_solutions,), n_pairs, d.scheme,
                          dropped=(d.dropped,), reason=reason)
    effect = float(stat(d.values, d.weights(np.ones((1, d.units))))[0] - threshold)
    low, high, dist = _bootstrap(
        lambda i: stat(d.values, d.weights(_counts(i, d.units))) - threshold, (d.units,),
        n_resamples, seed)
    return Comparison(effect, low, high, float(np.nanstd(dist, ddof=1)), bootstrap_p(dist),
                      "bootstrap", (d.n_solutions,), n_pairs, d.scheme, dropped=(d.dropped,),
                      reason=_undefined(dist))


def fixed(effect: float, n: tuple = (1,)) -> Comparison:
    """A deterministic computation (no sampling: a single path on an analytic
    landscape): the effect with no interval to speak of."""
    e = float(effect)
    return Comparison(e, e, e, 0.0, float("nan"), "none", tuple(n), None, "fixed")


def resampled(stat_of_indices, sizes: tuple, observed: float, null: float = 0.0,
              n_resamples: int = RESAMPLES, seed=0, n_solutions=None, keep: bool = False):
    """The bootstrap of any statistic of resampled solutions: ``stat_of_indices(*idx)``
    takes one (b, n_k) array of drawn indices per set (``sizes``) and returns (b,).
    The effect is ``observed - null``. ``keep``: (comparison, the bootstrap
    distribution of the statistic) instead."""
    _check_resamples(n_resamples)
    sizes = tuple(int(s) for s in sizes)
    n_sol = tuple(n_solutions or sizes)
    if min(sizes) < 2:
        c = Comparison(*(float("nan"),) * 5, "none", n_sol,
                       reason="fewer than 2 solutions in a set")
        return (c, np.full(1, np.nan)) if keep else c
    low, high, dist = _bootstrap(stat_of_indices, sizes, n_resamples, seed)
    c = Comparison(float(observed - null), low - null, high - null,
                   float(np.nanstd(dist, ddof=1)), bootstrap_p(dist, null), "bootstrap", n_sol)
    return (c, dist) if keep else c


def _check_resamples(n: int, name: str = "n_resamples") -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 100:
        raise ValueError(f"{name}: expected an int of at least 100, got {n!r}")


# --- verdicts -------------------------------------------------------------------------

def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and is not
    counted in the family)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def verdict(c: Comparison, direction: int, p_adjusted: Optional[float] = None,
            family: int = 1, alpha: float = ALPHA) -> tuple:
    """(verdict, reason) for the claim that the effect has the sign of ``direction``
    (+1: A above B or above the threshold; -1: below). ``held``: the interval excludes
    zero on the claimed side (and the p-value, adjusted over the ``family`` of claims,
    is below alpha); ``contradicted``: it excludes zero on the other side, likewise;
    else ``inconclusive``, with the reason."""
    if direction not in (1, -1):
        raise ValueError(f"direction: expected +1 or -1, got {direction!r}")
    if c.reason and c.scheme != "fixed":
        return "inconclusive", c.reason
    if c.scheme == "fixed":  # no sampling variation: the sign decides
        if c.effect == 0 or not np.isfinite(c.effect):
            return "inconclusive", "no difference"
        return ("held" if np.sign(c.effect) == direction else "contradicted"), ""
    if not (np.isfinite(c.low) and np.isfinite(c.high)):
        return "inconclusive", "no interval (too few values)"
    side = 1 if c.low > 0 else -1 if c.high < 0 else 0
    if side == 0:
        return "inconclusive", "the interval includes 0"
    p = c.p if p_adjusted is None else p_adjusted
    if not np.isfinite(p):
        return "inconclusive", "no p-value (nothing varies to test)"
    if p >= alpha:
        return "inconclusive", (
            f"the interval excludes 0 but p = {c.p:.3g} is {p:.3g} after Holm's correction "
            f"over {family} claims" if p_adjusted is not None and family > 1 else
            f"the interval excludes 0 but the {c.test} p-value is {c.p:.3g}")
    return ("held" if side == direction else "contradicted"), ""


def needed(c: Comparison, power: float = POWER, alpha: float = ALPHA) -> Optional[float]:
    """Roughly how many times the present sample (solutions, pairs or runs) would
    resolve the observed effect with the given power at the two-sided level ``alpha``
    (pass alpha / family for a claim among a family under Holm's correction),
    assuming the uncertainty shrinks as 1 / sqrt(n): from the bootstrap standard
    error (for the interval) and from the p-value's z-score (for the test), whichever
    asks for more. None where there is no effect or nothing to scale."""
    if not np.isfinite(c.effect) or c.effect == 0:
        return None
    z = _st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power)
    ks = []
    if np.isfinite(c.se) and c.se > 0:
        ks.append((z * c.se / abs(c.effect)) ** 2)
    if np.isfinite(c.p) and 0 < c.p < 1:
        ks.append((z / _st.norm.isf(c.p / 2)) ** 2)
    return float(max(ks)) if ks else None


def auc_null(scores_a, scores_b, n_resamples: int = PERMUTATIONS, seed=0) -> tuple:
    """The folded AUC of two sets of scores (max(A, 1 - A), as geometry.separation)
    and its label-permutation null: (auc, p-value, null 95% quantile). The scores
    are fixed (an unsupervised embedding does not see the labels), so the null is
    scipy's permutation test of the labels."""
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)

    def folded(x, y, axis=-1):
        g = ((x[..., :, None] > y[..., None, :]).mean(axis=(-1, -2))
             + 0.5 * (x[..., :, None] == y[..., None, :]).mean(axis=(-1, -2)))
        return np.maximum(g, 1.0 - g)

    res = _st.permutation_test((a, b), folded, permutation_type="independent",
                               vectorized=True, n_resamples=n_resamples,
                               alternative="greater", rng=_rng(seed))
    return (float(res.statistic), float(res.pvalue),
            float(np.quantile(res.null_distribution, LEVEL)))


__all__ = ["Comparison", "compare_solutions", "compare_pairs", "against_threshold", "fixed",
           "resampled", "holm", "verdict", "needed", "auc_null", "components",
           "weighted_median", "bootstrap_p", "VERDICTS", "ALPHA", "LEVEL", "RESAMPLES"]
