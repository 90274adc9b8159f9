"""The study's claims, each decided with its uncertainty: the paper's claims in its
order, then the ones beyond it (sharpness, alignment). A pure function of the study's
numbers (``evaluate(net, data)``), so it can be tested without a study.

Every claim gets an effect (a difference of medians unless its text says otherwise),
its 95% interval, a p-value, its n, and one of ``held``, ``contradicted`` or
``inconclusive`` (``not tested`` where its stage has not run). Holm's correction runs
over every claim with a p-value. A claim is ``held`` only if its interval excludes 0
on the claimed side and its Holm-adjusted p-value is below 0.05. Claims from a single
deterministic computation (the toy landscape's paths) have no sampling variation:
their sign decides, and they are not in Holm's family.

``data`` (every key optional; a claim whose numbers are missing is not tested):
``losses`` {"SGD"|"LBFGS": {"train": (n,), "test": (n,)}}, the kept runs' best losses;
``moments`` {set: (n, 2)}, each solution's mean and mean squared weight;
``centroid`` {set: (n,)}; ``barriers`` {"set@landscape": {"pairs": (k, 2), "barrier",
"barrier_rel", "barrier_mean": (k,)}}; ``aligned`` {set: {"pairs", "barrier"}};
``sharpness`` {set: (n,)}; ``sets`` {set: (n, D)} for kernel PCA; ``toy`` the plot
stage's toy summary.
"""

from __future__ import annotations

import math

import numpy as np

from .. import stats as S
from ..geometry import GAMMA_D, separation
from ..kpca import sq_distances
from .layout import COMBOS, KERNELS

# Resamples of each bootstrap. Kernel PCA's claims do an eigendecomposition per
# resample (about 1 ms for 96 solutions): 4000, so that their smallest bootstrap
# p-value (1 / 2000) survives Holm's correction over a few dozen claims; the
# bandwidth sweep's intervals, shown but not tested, 1000.
RESAMPLES = 2000
KPCA_RESAMPLES = 4000
SWEEP_RESAMPLES = 1000
LEVELS = (("barrier", "absolute H, the paper's"), ("barrier_rel", "H - max endpoint"),
          ("barrier_mean", "H - mean endpoint"))
NOT_TESTED = "not tested"


def _record(text, direction, comparison=None, statistic="difference of medians",
            unit="solutions", numbers="", group="paper", reason="", key="") -> dict:
    return dict(claim=text, direction=direction, statistic=statistic, unit=unit,
                numbers=numbers, group=group, reason=reason, key=key,
                comparison=None if comparison is None else comparison.to_dict())


def _f(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.3g}"


# --- kernel PCA's separation, resampled ------------------------------------------------

def _kernel(X: np.ndarray, kernel: str, gamma_d: float = 1.0) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if kernel == "rbf":
        return np.exp(-(gamma_d / X.shape[1]) * sq_distances(X, X))
    return X @ X.T


def _scores(K: np.ndarray) -> np.ndarray:
    """PC1 scores (up to scale and sign) of kernel PCA of the kernel matrix K."""
    from scipy.linalg import eigh

    n = len(K)
    m = K.mean(axis=0)
    _, v = eigh(K - m[None, :] - m[:, None] + K.mean(), subset_by_index=(n - 1, n - 1))
    return v[:, 0]


def _pc1_auc(K: np.ndarray, na: int) -> float:
    """The folded AUC of the two sets along PC1 of kernel PCA of the kernel matrix K
    (the first na rows set A), as geometry.separation of KernelPCA's embedding."""
    s = _scores(K)[:, None]
    return separation(s[:na], s[na:])["auc"]


def separation_interval(K: np.ndarray, na: int, threshold: float = 0.0,
                        n_resamples: int = KPCA_RESAMPLES, seed=0) -> S.Comparison:
    """PC1 AUC minus ``threshold``, its interval from resampling the solutions of each
    set (kernel PCA done again on every resample)."""
    nb = len(K) - na
    observed = _pc1_auc(K, na)

    def stat(ia, ib):
        out = np.empty(len(ia))
        for r in range(len(ia)):
            idx = np.concatenate([ia[r], na + ib[r]])
            out[r] = _pc1_auc(K[np.ix_(idx, idx)], na)
        return out

    return S.resampled(stat, (na, nb), observed, threshold, n_resamples, seed, keep=True)


# --- the claims -------------------------------------------------------------------------

class _Claims:
    def __init__(self, net: str, data: dict, seed: int, resamples: int, kpca_resamples: int):
        self.net, self.data, self.seed = net, data, seed
        self.B, self.Bk = resamples, kpca_resamples
        self.out, self.intervals = [], {}
        self._draws = 0
        self._kernels = {}

    def add(self, *args, **kw):
        self.out.append(_record(*args, **kw))

    def seed_of(self) -> int:
        """A seed of its own for every draw (bootstrap or permutation), in the claims'
        order: no two numbers share their resamples."""
        self._draws += 1
        return self.seed + 7919 * self._draws

    def kernel(self, a, b, kernel, gamma_d=1.0):
        key = (a, b, kernel, gamma_d)
        if key not in self._kernels:
            sets = self.data["sets"]
            self._kernels[key] = _kernel(np.concatenate([sets[a], sets[b]]), kernel, gamma_d)
        return self._kernels[key]

    # Table I
    def losses(self):
        L = self.data.get("losses") or {}
        ae = self.net == "autoencoder"
        for kind, text, direction in (
                ("train", "L-BFGS reaches a lower training loss than SGD (Table I)", -1),
                ("test", "the autoencoder's exception: L-BFGS also reaches the lower test loss "
                 "(Table I: 1.65e-2 against 4.52e-2)" if ae else
                 "SGD solutions generalize better: lower test loss at the test minimum "
                 "(Table I)", -1 if ae else +1)):
            if "SGD" not in L or "LBFGS" not in L:
                self.add(text, direction)
                continue
            a, b = L["LBFGS"][kind], L["SGD"][kind]
            c = S.compare_solutions(a, b, "median", self.B, self.seed_of(),
                                    names=("L-BFGS", "SGD"))
            self.add(text, direction, c, "difference of medians, L-BFGS - SGD", "runs",
                     f"median L-BFGS {_f(np.nanmedian(a))}, SGD {_f(np.nanmedian(b))}")
            for opt, v in (("lbfgs", a), ("sgd", b)):
                iv = S.against_threshold(v, 0.0, "median", n_resamples=self.B,
                                         seed=self.seed_of())
                self.intervals.setdefault("table1", {})[f"{kind}_{opt}"] = [
                    iv.effect, iv.low, iv.high, float(np.nanstd(v, ddof=1))
                    if np.isfinite(v).sum() > 1 else float("nan")]

    # Table S1
    def spreads(self):
        M = self.data.get("moments") or {}
        for kind in ("train", "test"):
            text = f"L-BFGS weights spread wider than SGD's (Table S1, std, {kind} sets)"
            a, b = f"LBFGS-{kind}", f"SGD-{kind}"
            if a not in M or b not in M:
                self.add(text, +1)
                continue
            c = S.compare_solutions(M[a], M[b], "pooled_std", self.B, self.seed_of(),
                                    names=(a, b))
            sa, sb = (float(S.pooled_std(np.asarray(M[k], float), np.ones((1, len(M[k]))))[0])
                      for k in (a, b))
            self.add(text, +1, c, "difference of the std of all weights, L-BFGS - SGD",
                     "solutions", f"std L-BFGS {_f(sa)}, SGD {_f(sb)}")

    # Fig. 5
    def centroid(self):
        d = self.data.get("centroid") or {}
        text = "L-BFGS solutions lie farther from the common centroid (Fig. 5, train sets)"
        if "LBFGS-train" not in d or "SGD-train" not in d:
            return self.add(text, +1)
        a, b = np.asarray(d["LBFGS-train"]), np.asarray(d["SGD-train"])
        c = S.compare_solutions(a, b, "median", self.B, self.seed_of(),
                                names=("LBFGS-train", "SGD-train"))
        self.add(text, +1, c, "difference of median distances, L-BFGS - SGD", "solutions",
                 f"median distance L-BFGS {_f(np.nanmedian(a))}, SGD {_f(np.nanmedian(b))}")
        for k, v in d.items():  # each set's median with its interval, for Fig. 5
            iv = S.against_threshold(v, 0.0, "median", n_resamples=self.B, seed=self.seed_of())
            self.intervals.setdefault("centroid", {})[k] = [iv.effect, iv.low, iv.high]

    # Fig. 4
    def barriers(self):
        bars = self.data.get("barriers") or {}
        ae = self.net == "autoencoder"
        for key, v in bars.items():
            for level, _ in LEVELS:
                if level in v:
                    iv = S.against_threshold(v[level], 0.0, "median", pairs=v["pairs"],
                                             n_resamples=self.B, seed=self.seed_of())
                    self.intervals.setdefault("barriers", {}).setdefault(key, {})[level] = [
                        iv.effect, iv.low, iv.high]
        for key, where in (("train@train", "train sets, training landscape"),
                           ("test@train", "test sets, training landscape"),
                           ("test@test", "test sets, test landscape")):
            kind, lname = key.split("@")
            sa, sb = f"SGD-{kind}@{lname}", f"LBFGS-{kind}@{lname}"
            a, b = bars.get(sa), bars.get(sb)
            for level, name in LEVELS:
                text = (f"the autoencoder's exception: SGD barriers are not lower than L-BFGS "
                        f"barriers ({where}; {name})" if ae else
                        f"SGD barriers are lower than L-BFGS barriers ({where}; {name})")
                direction = +1 if ae else -1
                if not a or not b or level not in a or level not in b:
                    self.add(text, direction)
                    continue
                c = S.compare_pairs(a[level], a["pairs"], b[level], b["pairs"], "median",
                                    self.B, self.seed_of(), names=(sa, sb))
                self.add(text, direction, c, "difference of medians, SGD - L-BFGS", "pairs",
                         f"median SGD {_f(np.nanmedian(a[level]))}, L-BFGS "
                         f"{_f(np.nanmedian(b[level]))}")

    # Fig. 6
    def separation(self):
        sets = self.data.get("sets")
        have = sets is not None and all(k in sets for k in ("LBFGS-train", "SGD-train"))
        sep = {}
        if sets is not None:
            for a, b in COMBOS:
                if a not in sets or b not in sets:
                    continue
                na = len(sets[a])
                for kernel in KERNELS:
                    K = self.kernel(a, b, kernel)
                    c, dist = separation_interval(K, na, 0.0, self.Bk, self.seed_of())
                    sc = _scores(K)
                    _, p, q95 = S.auc_null(sc[:na], sc[na:], self.B, self.seed_of())
                    sep[(a, b, kernel)] = (c, dist, p, q95)
                    self.intervals.setdefault("separation", {})[f"{a}|{b}|{kernel}"] = dict(
                        auc=c.effect, low=c.low, high=c.high, p_null=p, null95=q95)
                # the sweep: each bandwidth's AUC, its interval and the null's 95% point
                rows = []
                for g in GAMMA_D:
                    K = self.kernel(a, b, "rbf", g)
                    c, _ = separation_interval(K, na, 0.0, min(self.Bk, SWEEP_RESAMPLES),
                                               self.seed_of())
                    sc = _scores(K)
                    _, p, q95 = S.auc_null(sc[:na], sc[na:], self.B, self.seed_of())
                    rows.append(dict(gamma_d=float(g), auc=c.effect, low=c.low, high=c.high,
                                     p_null=p, null95=q95))
                self.intervals.setdefault("bandwidth", {})[f"{a}|{b}"] = rows
        self._separation_claims(sep, have)

    def _separation_claims(self, sep, have):
        self._sep = sep
        rbf, lin = ("LBFGS-train", "SGD-train", "rbf"), ("LBFGS-train", "SGD-train", "linear")
        rbf_t = ("LBFGS-test", "SGD-test", "rbf")
        text = ("RBF kernel PCA separates SGD from L-BFGS solutions along PC1 at the paper's "
                "bandwidth (train sets, AUC >= 0.9)")
        rbf_at = None
        if rbf in sep:
            c = self._threshold(sep[rbf], 0.9)
            self.add(text, +1, c, "PC1 AUC - 0.9", "solutions", self._auc_numbers(rbf))
            rbf_at = len(self.out) - 1
        else:
            self.add(text, +1)
        if self.net in ("fcp", "lenet"):
            text = ("with the two test sets the separation nearly disappears (test sets' AUC "
                    "below 0.75)")
            if rbf_t in sep:
                self.add(text, -1, self._threshold(sep[rbf_t], 0.75), "PC1 AUC - 0.75",
                         "solutions", self._auc_numbers(rbf_t))
            else:
                self.add(text, -1)
            text = "the test sets separate less than the train sets (AUC, RBF kernel)"
            if rbf_t in sep and rbf in sep:
                c = self._difference(sep[rbf_t][0], sep[rbf][0])
                self.add(text, -1, c, "difference of AUCs, test sets - train sets",
                         "solutions", f"test sets AUC {sep[rbf_t][0].effect:.3f}, train sets "
                         f"{sep[rbf][0].effect:.3f}")
            else:
                self.add(text, -1)
        else:
            text = "the two test sets separate as well (AUC >= 0.9)"
            if rbf_t in sep:
                self.add(text, +1, self._threshold(sep[rbf_t], 0.9), "PC1 AUC - 0.9",
                         "solutions", self._auc_numbers(rbf_t))
            else:
                self.add(text, +1)
        text = ("the separation is seen only with the RBF kernel (linear kernel PCA: AUC < 0.9 "
                "where the RBF kernel separates)")
        if lin not in sep or rbf_at is None:
            self.add(text, -1)
        else:  # decided only where the RBF kernel's claim is held (decide())
            self.add(text, -1, self._threshold(sep[lin], 0.9), "linear PC1 AUC - 0.9",
                     "solutions", self._auc_numbers(lin))
            self.out[-1]["premise"] = rbf_at

    @staticmethod
    def _threshold(entry, t: float) -> S.Comparison:
        """An AUC's comparison against the threshold t: shifted, with the bootstrap's
        p-value of t."""
        c, dist = entry[0], entry[1]
        d = c.to_dict()
        d.update(effect=c.effect - t, low=c.low - t, high=c.high - t,
                 p=S.bootstrap_p(dist, t), test="bootstrap")
        return S.Comparison.from_dict(d)

    @staticmethod
    def _difference(c1: S.Comparison, c2: S.Comparison) -> S.Comparison:
        """Two independent estimates' difference: the interval from their standard
        errors (normal approximation), stated as such."""
        e = c1.effect - c2.effect
        se = math.hypot(c1.se, c2.se)
        z = 1.959963984540054
        from scipy.stats import norm

        p = float(2 * norm.sf(abs(e) / se)) if se > 0 else float("nan")
        return S.Comparison(e, e - z * se, e + z * se, se, p, "normal approximation",
                            tuple(c1.n_solutions) + tuple(c2.n_solutions))

    def _auc_numbers(self, key) -> str:
        c, _, p, q95 = self._sep[key]
        return (f"AUC {c.effect:.3f} [{c.low:.3f}, {c.high:.3f}]; label-permutation "
                f"p = {p:.3g}, the null's 95% point {q95:.3f}")

    # Fig. 3
    def toy(self):
        toy = self.data.get("toy")
        lams = sorted(toy, key=float) if toy else []
        text = ("Fig. 3: found paths on the toy landscape reach the paper's barriers "
                "(0.640 - 0.652, within 0.03, every lambda; straight line 1.102)")
        if not toy:
            self.add(text, -1, key="toy")
        else:
            worst = max(abs(toy[k]["barrier_refined"] - toy[k]["paper"]) for k in lams)
            self.add(text, -1, S.fixed(worst - 0.03), "largest |H - paper's H| - 0.03", "paths",
                     ", ".join(f"lambda {k}: {toy[k]['barrier_refined']:.3f} (paper "
                               f"{toy[k]['paper']:.3f})" for k in lams), key="toy")
        text = "Fig. 3: the barrier hardly depends on lambda (spread at most 0.05 over 10 - 1000)"
        if not toy:
            self.add(text, -1, key="toy")
        else:
            hs = [toy[k]["barrier_refined"] for k in lams]
            self.add(text, -1, S.fixed(max(hs) - min(hs) - 0.05), "spread - 0.05", "paths",
                     f"spread {max(hs) - min(hs):.3f}", key="toy")

    # beyond the paper
    def sharpness(self):
        sh = self.data.get("sharpness") or {}
        for kind in ("train", "test"):
            text = (f"L-BFGS minima are sharper than SGD minima ({kind} sets; largest Hessian "
                    "eigenvalue on the training landscape)")
            a, b = f"LBFGS-{kind}", f"SGD-{kind}"
            if a not in sh or b not in sh:
                self.add(text, +1, group="beyond", key="sharpness")
                continue
            c = S.compare_solutions(sh[a], sh[b], "median", self.B, self.seed_of(),
                                    names=(a, b))
            self.add(text, +1, c, "difference of median top eigenvalues, L-BFGS - SGD",
                     "solutions", f"median L-BFGS {_f(np.nanmedian(sh[a]))}, SGD "
                     f"{_f(np.nanmedian(sh[b]))}", group="beyond", key="sharpness")
            for k in (a, b):
                iv = S.against_threshold(sh[k], 0.0, "median", n_resamples=self.B,
                                         seed=self.seed_of())
                self.intervals.setdefault("sharpness", {})[k] = [iv.effect, iv.low, iv.high]

    def alignment(self):
        al = self.data.get("aligned") or {}
        for kind in ("train", "test"):
            text = (f"SGD barriers are lower than L-BFGS barriers after permutation alignment "
                    f"({kind} sets, training landscape; absolute H)")
            a, b = al.get(f"SGD-{kind}"), al.get(f"LBFGS-{kind}")
            if not a or not b:
                self.add(text, -1, group="beyond", key="alignment")
                continue
            c = S.compare_pairs(a["barrier"], a["pairs"], b["barrier"], b["pairs"], "median",
                                self.B, self.seed_of(), names=(f"SGD-{kind}", f"LBFGS-{kind}"))
            self.add(text, -1, c, "difference of medians, SGD - L-BFGS", "pairs",
                     f"median SGD {_f(np.nanmedian(a['barrier']))}, L-BFGS "
                     f"{_f(np.nanmedian(b['barrier']))}", group="beyond", key="alignment")


    def certified(self):
        cert = self.data.get("certified") or {}
        for key, where in (("train@train", "train sets, training landscape"),
                           ("test@test", "test sets, test landscape")):
            kind, lname = key.split("@")
            text = (f"SGD barriers are lower than L-BFGS barriers on refined paths ({where}; "
                    "absolute H, certified or bounded)")
            sa, sb = f"SGD-{kind}@{lname}", f"LBFGS-{kind}@{lname}"
            a, b = cert.get(sa), cert.get(sb)
            if not a or not b:
                self.add(text, -1, group="beyond", key="certified")
                continue
            c = S.compare_pairs(a["barrier"], a["pairs"], b["barrier"], b["pairs"], "median",
                                self.B, self.seed_of(), names=(sa, sb))
            self.add(text, -1, c, "difference of medians, SGD - L-BFGS", "pairs",
                     f"median SGD {_f(np.nanmedian(a['barrier']))}, L-BFGS "
                     f"{_f(np.nanmedian(b['barrier']))}", group="beyond", key="certified")

    def map(self):
        maps = self.data.get("map") or {}
        for view in ("raw", "aligned"):
            text = (f"SGD's minima join lower than L-BFGS's in the map of minima ({view}; "
                    "each pair's join level: the lowest barrier through the network, an "
                    "upper bound)")
            m = maps.get(view) or {}
            a, b = m.get("SGD-train"), m.get("LBFGS-train")
            if not a or not b or not len(a["join"]) or not len(b["join"]):
                self.add(text, -1, group="beyond", key="map")
                continue
            c = S.compare_pairs(a["join"], a["pairs"], b["join"], b["pairs"], "median",
                                self.B, self.seed_of(), scheme="solutions",
                                names=("SGD-train", "LBFGS-train"))
            self.add(text, -1, c, "difference of median join levels, SGD - L-BFGS",
                     "pairs", f"median SGD {_f(np.nanmedian(a['join']))}, L-BFGS "
                     f"{_f(np.nanmedian(b['join']))}; solutions resampled, the network "
                     "held fixed", group="beyond", key="map")


def evaluate(net: str, data: dict, seed: int = 0, resamples: int = RESAMPLES,
             kpca_resamples: int = KPCA_RESAMPLES) -> tuple:
    """(claims, intervals): every claim's record in the report's order, with its
    verdict, and the intervals the tables and figures show beside the medians."""
    c = _Claims(net, data, seed, resamples, kpca_resamples)
    c.losses()
    c.spreads()
    c.centroid()
    c.barriers()
    c.separation()
    c.toy()
    c.sharpness()
    c.alignment()
    c.certified()
    c.map()
    decide(c.out)
    return c.out, c.intervals


def with_toy(claims: list, toy) -> list:
    """``claims`` with the toy landscape's claims decided from ``toy`` (the plot
    stage's summary, which the report has and the claims' stage, running before it,
    may not): they are deterministic, outside Holm's family, so nothing else moves."""
    c = _Claims("", {"toy": toy}, 0, RESAMPLES, KPCA_RESAMPLES)
    c.toy()
    decide(c.out)  # no p-values among them: each decided alone
    fresh = iter(c.out)
    out = []
    for r in claims:
        if r.get("key") != "toy":
            out.append(r)
            continue
        new = next(fresh)
        new["family"] = r.get("family", 0)  # the family of the claims around them
        out.append(new)
    return out


def decide(claims: list) -> None:
    """Holm's adjustment over the claims with a p-value, then each claim's verdict
    and, where it is inconclusive, the sample that would resolve its effect (in
    place)."""
    # a claim that cannot be decided (too few values) is not in the family
    ps = [r["comparison"]["p"] if r["comparison"] and not r["comparison"]["reason"]
          and not r["reason"] else float("nan") for r in claims]
    adj = S.holm(ps)
    family = int(np.isfinite(adj).sum())
    for r, pa in zip(claims, adj):
        r["family"] = family
        r["p_holm"] = None if not np.isfinite(pa) else float(pa)
        r["needed"] = None
        if r["comparison"] is None:
            r["verdict"] = "inconclusive" if r["reason"] else NOT_TESTED
            continue
        c = S.Comparison.from_dict(r["comparison"])
        if r["reason"]:
            v, why = "inconclusive", r["reason"]
        else:
            v, why = S.verdict(c, r["direction"], None if r["p_holm"] is None else pa,
                               family)
        premise = r.get("premise")
        if premise is not None and claims[premise]["verdict"] != "held":
            pv = claims[premise]["verdict"]
            v = "contradicted" if pv == "contradicted" else "inconclusive"
            why = ("its premise, that the RBF kernel separates the train sets at the "
                   f"paper's bandwidth, is {pv}")
        r["verdict"], r["reason"] = v, why
        if v == "inconclusive" and (premise is None or claims[premise]["verdict"] == "held"):
            # at the level Holm's first step asks of the family (Bonferroni's): enough
            # to resolve the effect whatever the other claims' p-values
            k = S.needed(c, alpha=S.ALPHA / max(family, 1))
            n = max(c.n_pairs if r["unit"] == "pairs" and c.n_pairs else c.n_solutions)
            if k is not None and k > 1:
                r["needed"] = int(math.ceil(k * n))
