"""losstopo.stats against scipy.stats on the same data, the coverage of its intervals,
the cluster bootstrap against the naive pair bootstrap, Holm's adjustment against its
definition, and bad input."""

import numpy as np
import pytest
from scipy import stats as st

from losstopo import stats as S


def _scipy_median_diff(x, y, axis=-1):
    return np.median(x, axis=axis) - np.median(y, axis=axis)


@pytest.mark.parametrize("statistic, fn", [("median", np.median), ("mean", np.mean)])
def test_interval_and_p_value_equal_scipys_on_the_same_data(statistic, fn):
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 23), rng.normal(0.7, 2, 17)

    def diff(x, y, axis=-1):
        return fn(x, axis=axis) - fn(y, axis=axis)

    c = S.compare_solutions(a, b, statistic, n_resamples=999, seed=5, permutations=999)
    ref = st.bootstrap((a, b), diff, n_resamples=999, vectorized=True, method="percentile",
                       rng=np.random.default_rng(5))
    perm = st.permutation_test((a, b), diff, permutation_type="independent",
                               vectorized=True, n_resamples=999, rng=np.random.default_rng(5))
    assert c.effect == pytest.approx(fn(a) - fn(b), abs=1e-12)
    assert c.low == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert c.high == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert c.se == pytest.approx(ref.standard_error, rel=1e-9)
    assert c.p == pytest.approx(perm.pvalue, abs=1e-12)
    assert c.test == "permutation" and c.n_solutions == (23, 17) and c.n_pairs is None


def test_weighted_median_equals_the_median_of_the_expanded_multiset():
    rng = np.random.default_rng(0)
    v = rng.normal(size=9)
    W = rng.integers(0, 4, size=(50, 9)).astype(float)
    got = S.weighted_median(v, W)
    for row, g in zip(W, got):
        expanded = np.repeat(v, row.astype(int))
        assert (np.isnan(g) if expanded.size == 0 else g == pytest.approx(np.median(expanded)))


def _disjoint_pairs(rng, n_pairs, shift):
    """Pair values with solution effects, on disjoint pairs (2k, 2k+1)."""
    a = rng.normal(0, 1, 2 * n_pairs)
    pairs = np.arange(2 * n_pairs).reshape(-1, 2)
    return a[pairs[:, 0]] + a[pairs[:, 1]] + rng.normal(0, 0.5, n_pairs) + shift, pairs


def _all_pairs(rng, n, shift):
    """Every pair of n solutions, with strong solution effects (shared endpoints)."""
    a = rng.normal(0, 1, n)
    pairs = np.stack(np.triu_indices(n, 1), axis=1)
    return a[pairs[:, 0]] + a[pairs[:, 1]] + rng.normal(0, 0.2, len(pairs)) + shift, pairs


@pytest.mark.parametrize("design", ["disjoint", "shared"])
def test_intervals_cover_a_known_shift_and_zero_is_inconclusive(design):
    """200 seeded repetitions: the 95% interval covers the true difference of medians
    (the shift: both sets' pair values are symmetric about their shift) in 90-99% of
    them, and with no shift the verdict is inconclusive in 90-99%."""
    make = ((lambda r, s: _disjoint_pairs(r, 30, s)) if design == "disjoint"
            else (lambda r, s: _all_pairs(r, 12, s)))
    covered = inconclusive = 0
    for rep in range(200):
        rng = np.random.default_rng(1000 + rep)
        xa, pa = make(rng, 0.0)
        xb, pb = make(rng, 0.8)
        c = S.compare_pairs(xa, pa, xb, pb, n_resamples=400, seed=rep, permutations=400)
        assert c.scheme == ("clusters" if design == "disjoint" else "solutions")
        covered += c.low <= -0.8 <= c.high
        ya, qa = make(rng, 0.0)
        z = S.compare_pairs(xa, pa, ya, qa, n_resamples=400, seed=rep, permutations=400)
        inconclusive += S.verdict(z, -1)[0] == "inconclusive"
    assert 180 <= covered <= 198, covered
    assert 180 <= inconclusive <= 198, inconclusive


def test_the_cluster_bootstrap_equals_the_pair_bootstrap_when_pairs_are_disjoint():
    rng = np.random.default_rng(7)
    xa, pa = _disjoint_pairs(rng, 15, 0.0)
    xb, pb = _disjoint_pairs(rng, 12, 0.3)
    c = S.compare_pairs(xa, pa, xb, pb, n_resamples=999, seed=2)
    naive = S.compare_solutions(xa, xb, n_resamples=999, seed=2)  # pairs as if independent
    assert c.scheme == "clusters"
    assert (c.low, c.high, c.p) == (naive.low, naive.high, naive.p)
    assert c.n_pairs == (15, 12) and c.n_solutions == (30, 24)


def test_the_cluster_bootstrap_is_wider_than_the_naive_one_with_shared_endpoints():
    """Every pair of 8 solutions, values dominated by the endpoints: the pairs are far
    from independent and the naive pair bootstrap is too narrow."""
    rng = np.random.default_rng(11)
    xa, pa = _all_pairs(rng, 8, 0.0)
    xb, pb = _all_pairs(rng, 8, 0.0)
    c = S.compare_pairs(xa, pa, xb, pb, n_resamples=2000, seed=1)
    naive = S.compare_solutions(xa, xb, n_resamples=2000, seed=1)
    assert c.scheme == "solutions" and c.test == "bootstrap"
    assert (c.high - c.low) > 1.5 * (naive.high - naive.low)
    assert c.se > 1.5 * naive.se


def test_components_of_the_pairs_graph():
    n, comp = S.components(np.array([[0, 1], [2, 3], [1, 4], [5, 6], [3, 7]]))
    assert n == 3 and comp.tolist() == [0, 1, 0, 2, 1]


def test_holm_against_its_definition():
    rng = np.random.default_rng(4)
    for _ in range(50):
        p = rng.uniform(0, 0.2, rng.integers(1, 9))
        p[rng.uniform(size=p.size) < 0.2] = np.nan
        got = S.holm(p)
        ok = np.flatnonzero(np.isfinite(p))
        m = len(ok)
        rank = {i: r for r, i in enumerate(sorted(ok, key=lambda i: p[i]))}
        for i in range(len(p)):
            if i not in rank:
                assert np.isnan(got[i])
                continue
            want = max(min(1.0, (m - rank[j]) * p[j]) for j in ok if rank[j] <= rank[i])
            assert got[i] == pytest.approx(want)


def test_verdicts_three_ways_and_after_holm():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 40), rng.normal(1.5, 1, 40)
    c = S.compare_solutions(a, b, seed=0)
    assert S.verdict(c, -1) == ("held", "")
    assert S.verdict(c, +1) == ("contradicted", "")
    v, why = S.verdict(c, -1, p_adjusted=0.2, family=10)
    assert v == "inconclusive" and "Holm" in why
    z = S.compare_solutions(a, rng.normal(0, 1, 40), seed=0)
    assert S.verdict(z, -1)[0] == "inconclusive"
    with pytest.raises(ValueError, match="direction"):
        S.verdict(c, 0)


def test_pairs_needed_scales_with_the_standard_error():
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1, 20), rng.normal(0.3, 1, 20)
    c = S.compare_solutions(a, b, "mean", seed=0)
    k = S.needed(c)
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert k == pytest.approx(max((z * c.se / abs(c.effect)) ** 2,
                                  (z / st.norm.isf(c.p / 2)) ** 2))
    # the estimate is roughly right: with k times the data, the interval excludes 0
    # about 80% of the time (here: at least half of 40 tries)
    n = int(np.ceil(20 * k))
    hits = 0
    for rep in range(40):
        r = np.random.default_rng(rep)
        cc = S.compare_solutions(r.normal(0, 1, n), r.normal(0.3, 1, n), "mean",
                                 n_resamples=400, seed=rep, permutations=100)
        hits += cc.high < 0
    assert hits >= 20


def test_auc_null_is_the_label_permutation_null_of_mann_whitney():
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 30), rng.normal(0.6, 1, 25)
    auc, p, q95 = S.auc_null(a, b, n_resamples=4000, seed=1)
    u = st.mannwhitneyu(a, b, alternative="two-sided")
    g = u.statistic / (30 * 25)
    assert auc == pytest.approx(max(g, 1 - g))
    assert p == pytest.approx(u.pvalue, abs=0.01)
    assert 0.55 < q95 < 0.7


def test_threshold_and_fixed_claims():
    rng = np.random.default_rng(1)
    c = S.against_threshold(rng.normal(1.0, 0.1, 30), 0.9, "median", seed=0)
    assert c.effect == pytest.approx(np.median(rng.normal(1.0, 0.1, 30)) - 0.9, abs=0.1)
    assert S.verdict(c, +1)[0] == "held"
    f = S.fixed(-0.01)
    assert S.verdict(f, -1) == ("held", "") and S.verdict(f, +1)[0] == "contradicted"


def test_bad_input_is_a_reason_or_a_named_error():
    one = S.compare_solutions([1.0], [1.0, 2.0, 3.0])
    assert S.verdict(one, 1) == ("inconclusive", "A: fewer than 2 solutions")
    same = S.compare_solutions([2.0] * 5, [2.0] * 6)
    assert S.verdict(same, 1) == ("inconclusive", "no variation: every value is the same")
    nan = S.compare_pairs([np.nan, 0.2, 0.3], [[0, 1], [2, 3], [4, 5]],
                          [0.1, 0.2, 0.4], [[0, 1], [2, 3], [4, 5]])
    assert nan.dropped == (1, 0) and nan.n_pairs == (2, 3)
    dead = S.compare_pairs([np.nan, np.nan], [[0, 1], [2, 3]], [0.1, 0.2], [[0, 1], [2, 3]])
    v, why = S.verdict(dead, -1)
    assert v == "inconclusive" and "fewer than 2 solutions" in why and "not finite" in why
    with pytest.raises(ValueError, match="pairs must be an integer array"):
        S.compare_pairs([0.1, 0.2], [[0, 1]], [0.1], [[0, 1]])
    with pytest.raises(ValueError, match="itself"):
        S.compare_pairs([0.1], [[1, 1]], [0.1], [[0, 1]])
    with pytest.raises(ValueError, match="n_resamples"):
        S.compare_solutions([1, 2], [3, 4], n_resamples=5)
    with pytest.raises(ValueError, match="statistic"):
        S.compare_solutions([1, 2], [3, 4], statistic="mode")
    with pytest.raises(ValueError, match="1-D"):
        S.compare_solutions(np.zeros((2, 2, 2)), [3, 4])
    with pytest.raises(ValueError, match="median takes a 1-D array"):
        S.compare_solutions(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"pooled_std takes \(n, 2\)"):
        S.compare_solutions([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], "pooled_std")
    none = S.compare_pairs([], [], [0.1, 0.2], [[0, 1], [2, 3]])
    assert S.verdict(none, -1) == ("inconclusive", "A: fewer than 2 solutions")
    # an interval clear of 0 with no test behind it is no verdict
    untested = S.Comparison(0.5, 0.4, 0.6, 0.0, float("nan"), "none", (5, 5))
    assert S.verdict(untested, 1)[0] == "inconclusive"


def test_a_comparison_survives_json():
    import json

    c = S.compare_pairs([0.1, 0.5, 0.3], [[0, 1], [2, 3], [4, 5]], [0.2, 0.9], [[0, 1], [2, 3]])
    assert S.Comparison.from_dict(json.loads(json.dumps(c.to_dict()))) == c
