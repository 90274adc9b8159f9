"""The report's claims and the toy section against the numbers they are made of."""

import numpy as np
import pytest

from losstopo import FourierPath
from losstopo.study import claims as C
from losstopo.study.report import claim_line, render_report
from losstopo.study import make_config

SETS = ("SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test")


def data(sgd_barrier, lbfgs_barrier, n=20, seed=0):
    """Raw numbers of a study whose every claim is clear-cut: 20 solutions per set,
    10 disjoint pairs, SGD and L-BFGS far apart."""
    rng = np.random.default_rng(seed)
    pairs = np.arange(n).reshape(-1, 2)

    def bars(h):
        v = h * (1 + 0.05 * rng.normal(size=len(pairs)))
        return dict(pairs=pairs, barrier=v, barrier_rel=v / 2, barrier_mean=0.75 * v)

    def joins(h, m=8):
        i, j = np.triu_indices(m, 1)
        return dict(pairs=np.stack([i, j], 1), join=h * (1 + 0.05 * rng.normal(size=len(i))))

    sets = {k: rng.normal(0, 0.1, (n, 30)) + (2.0 if k.startswith("LBFGS") else 0.0)
            for k in SETS}
    return dict(
        losses={"SGD": {"train": rng.uniform(1e-3, 2e-3, n), "test": rng.uniform(0.08, 0.09, n)},
                "LBFGS": {"train": rng.uniform(1e-9, 2e-9, n), "test": rng.uniform(0.1, 0.11, n)}},
        moments={k: np.stack([v.mean(1), (v ** 2).mean(1)], 1) * (
            [1, 4] if k == "LBFGS-train" else [1, 1]) for k, v in sets.items()},
        centroid={"SGD-train": rng.uniform(1, 2, n), "LBFGS-train": rng.uniform(3, 4, n)},
        barriers={f"{s}-{k}@{ls}": bars(sgd_barrier if s == "SGD" else lbfgs_barrier)
                  for s in ("SGD", "LBFGS") for k, ls in (("train", "train"),
                                                          ("test", "train"), ("test", "test"))},
        sets=sets,
        sharpness={k: rng.uniform(1, 2, n) * (10 if k.startswith("LBFGS") else 1) for k in SETS},
        aligned={k: dict(pairs=pairs[:5], barrier=rng.uniform(0, 1, 5)) for k in SETS},
        certified={f"{s}-{k}@{k}": bars(0.1 * (sgd_barrier if s == "SGD" else lbfgs_barrier))
                   for s in ("SGD", "LBFGS") for k in ("train", "test")},
        map={view: {f"{s}-train": joins(sgd_barrier if s == "SGD" else lbfgs_barrier)
                    for s in ("SGD", "LBFGS")} for view in ("raw", "aligned")},
        toy={"10": dict(barrier_refined=0.66, paper=0.646),
             "100": dict(barrier_refined=0.70, paper=0.640),
             "1000": dict(barrier_refined=0.65, paper=0.652)})


def evaluate(net, d):
    return C.evaluate(net, d, seed=0, resamples=400, kpca_resamples=400)


def by_claim(found):
    return {r["claim"]: r for r in found}


@pytest.fixture(scope="module")
def fcp():
    return evaluate("fcp", data(0.2, 0.3))


def test_every_claim_with_its_effect_interval_and_verdict(fcp):
    found, intervals = fcp
    v = by_claim(found)
    assert len(found) == 28 and sum(r["group"] == "beyond" for r in found) == 8
    assert all(r["verdict"] in ("held", "contradicted", "inconclusive") for r in found)
    train = v["L-BFGS reaches a lower training loss than SGD (Table I)"]
    assert train["verdict"] == "held" and train["comparison"]["high"] < 0
    assert train["comparison"]["test"] == "permutation" and train["p_holm"] < 0.05
    assert v["SGD solutions generalize better: lower test loss at the test minimum "
             "(Table I)"]["verdict"] == "held"
    assert v["L-BFGS weights spread wider than SGD's (Table S1, std, train sets)"][
        "verdict"] == "held"
    fig5 = v["L-BFGS solutions lie farther from the common centroid (Fig. 5, train sets)"]
    assert fig5["verdict"] == "held" and fig5["comparison"]["low"] > 0
    barrier = [r for r in found if r["claim"].startswith("SGD barriers are lower than L-BFGS "
                                                         "barriers (")]
    assert len(barrier) == 9 and all(r["verdict"] == "held" for r in barrier)
    assert all(r["comparison"]["scheme"] == "clusters" and r["comparison"]["n_pairs"] == [10, 10]
               for r in barrier)
    joined = [r for r in found if r["key"] == "map"]
    assert len(joined) == 2 and all(r["verdict"] == "held" and r["comparison"]["high"] < 0
                                    and r["comparison"]["scheme"] == "solutions"
                                    for r in joined)
    refined = [r for r in found if "on refined paths" in r["claim"]]
    assert len(refined) == 2 and all(r["verdict"] == "held" and r["key"] == "certified"
                                     for r in refined)
    # every solution separates, with either kernel: the RBF claim holds, the "only
    # with the RBF kernel" claim is contradicted by the linear kernel's AUC
    sep = [r for r in found if "separat" in r["claim"]]
    assert [r["verdict"] for r in sep] == ["held", "contradicted", "inconclusive",
                                           "contradicted"]
    toy = [r for r in found if r["claim"].startswith("Fig. 3")]
    assert [r["verdict"] for r in toy] == ["contradicted", "held"]  # 0.70: 0.06 off 0.640
    assert toy[0]["p_holm"] is None and toy[0]["comparison"]["scheme"] == "fixed"
    assert {r["family"] for r in found} == {sum(r["p_holm"] is not None for r in found)}
    # the intervals the tables and figures show
    med, lo, hi = intervals["barriers"]["SGD-train@train"]["barrier"]
    assert lo <= med <= hi and 0.18 < med < 0.22
    assert set(intervals["separation"]) == {f"{a}|{b}|{k}" for a, b in
                                            C.COMBOS for k in ("rbf", "linear")}
    assert len(intervals["bandwidth"]["LBFGS-train|SGD-train"]) == 6
    med, lo, hi = intervals["centroid"]["LBFGS-train"]
    assert lo <= med <= hi and 3 < med < 4


def test_a_reversed_effect_is_contradicted_and_none_is_inconclusive():
    v = by_claim(evaluate("fcp", data(0.3, 0.2))[0])
    key = ("SGD barriers are lower than L-BFGS barriers (train sets, training landscape; "
           "absolute H, the paper's)")
    assert v[key]["verdict"] == "contradicted"
    same = by_claim(evaluate("fcp", data(0.3, 0.3))[0])[key]
    assert same["verdict"] == "inconclusive" and "interval includes 0" in same["reason"]


def test_the_autoencoder_checks_the_papers_exception():
    # The paper: SGD barriers are lower in every network but the autoencoder.
    ae = [r for r in evaluate("autoencoder", data(0.2, 0.3))[0] if "SGD barriers are not" in r["claim"]]
    assert len(ae) == 9 and all(r["verdict"] == "contradicted" for r in ae)
    ae = [r for r in evaluate("autoencoder", data(0.4, 0.3))[0] if "SGD barriers are not" in r["claim"]]
    assert all(r["verdict"] == "held" and "exception" in r["claim"] for r in ae)


def test_claims_without_their_stage_are_not_tested():
    found, intervals = C.evaluate("lstm", {})
    assert len(found) == 27 and all(r["verdict"] == "not tested" for r in found)
    assert intervals == {}
    text = render_report(make_config(data="synthetic"), {"claims": found})
    assert text.count("**not tested**") == 27


def test_the_report_prints_each_claim_with_its_numbers(fcp):
    found, intervals = fcp
    text = render_report(make_config(data="synthetic"), {"claims": found, "intervals": intervals,
                                                         "toy": data(0, 0)["toy"]})
    line = next(ln for ln in text.splitlines() if "(train sets, training landscape; absolute" in ln)
    assert line.startswith("- **held**: SGD barriers are lower")
    assert "95% interval [" in line and "p = " in line and "Holm" in line
    assert "10 + 10 pairs on 20 + 20 solutions" in line
    assert "Holm's correction runs over the" in text and "held," in text


def test_an_inconclusive_claim_says_what_would_decide_it():
    d = data(0.2, 0.2)
    rng = np.random.default_rng(5)
    for k in ("SGD-train@train", "LBFGS-train@train"):  # a small effect in a wide spread
        d["barriers"][k]["barrier"] = rng.normal(0.2 if k[0] == "S" else 0.21, 0.05, 10)
    r = by_claim(evaluate("fcp", d)[0])[
        "SGD barriers are lower than L-BFGS barriers (train sets, training landscape; "
        "absolute H, the paper's)"]
    assert r["verdict"] == "inconclusive" and r["needed"] > 10
    assert f"about {r['needed']} pairs per set would resolve" in claim_line(r)


def test_failed_pairs_and_tiny_sets_are_reasons_not_verdicts():
    d = data(0.2, 0.3)
    d["barriers"]["SGD-train@train"]["barrier"][:9] = np.nan  # 9 of 10 pairs failed
    d["losses"]["SGD"]["test"] = np.array([0.1])  # one run kept
    v = by_claim(evaluate("fcp", d)[0])
    r = v["SGD barriers are lower than L-BFGS barriers (train sets, training landscape; "
          "absolute H, the paper's)"]
    assert r["verdict"] == "inconclusive" and "fewer than 2 pairs (9 of" in r["reason"]
    assert r["comparison"]["dropped"] == [9, 0] and r["p_holm"] is None
    assert "failed pairs left out: 9 + 0" in claim_line(r)
    r = v["SGD solutions generalize better: lower test loss at the test minimum (Table I)"]
    assert r["verdict"] == "inconclusive" and "SGD: fewer than 2 solutions" in r["reason"]


def test_backtracking_against_a_direct_construction():
    a, b = np.zeros(2), np.array([1.0, 0.0])
    assert FourierPath(a, b).backtracking() == 0.0
    # x(t) = t + c sin(2 pi t): runs backwards where dx/dt = 1 + 2 pi c cos(2 pi t) < 0.
    c = 0.5
    coeffs = np.zeros((2, 2))
    coeffs[1, 0] = c
    t = np.linspace(0, 1, 200001)
    dx = np.abs(np.gradient(t + c * np.sin(2 * np.pi * t), t))
    back = dx[1 + 2 * np.pi * c * np.cos(2 * np.pi * t) < 0].sum() / dx.sum()
    assert FourierPath(a, b, coeffs).backtracking(n=20001) == pytest.approx(back, abs=1e-3)
    assert 0.2 < back < 0.8


def test_curve_and_alignment_sections_print_their_numbers():
    from losstopo.study.report import alignment_section, curves_section

    rows = [dict(curve=c, K=k, objective=o, barrier=b)
            for o, bs in (("sum", (0.70, 0.69, 0.77, 1.09)), ("minimax", (0.625,) * 4))
            for (c, k), b in zip((("fourier", 10), ("bezier", 10), ("polychain", 10),
                                  ("bezier", 1)), bs)]
    text = "\n".join(curves_section({}, {"curves": {"toy": dict(saddle=0.6, rows=rows)}}))
    assert "0.7000 (+0.1000)" in text and "bezier K=1" in text
    assert "+0.0900 to +0.1700" in text and "+0.0250 to +0.0250" in text
    assert "The objective decides more than the basis" in text
    al = {n: dict(pairs=2, median=h, median_unaligned=u, median_rel=h / 2,
                  median_rel_unaligned=u / 2, distance_before=9.0, distance_after=7.0)
          for n, h, u in (("SGD-train", 0.3, 0.2), ("LBFGS-train", 0.25, 0.4))}
    text = "\n".join(alignment_section({}, {"alignment": al}))
    assert "| SGD-train | 2 | 0.2 | 0.3 |" in text and "9 -> 7" in text
