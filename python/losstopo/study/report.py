"""The study's report: report.md with our numbers beside the paper's (Table I, Table
S1, barriers, kernel PCA) and which of the paper's claims held on this run."""

from __future__ import annotations

import numpy as np

from .. import __version__
from .layout import COMBOS, KERNELS, SETS, SLICES, barrier_keys

# The paper's numbers (PAPER.md): Table I and Table S1.
PAPER_TABLE1 = {
    "fcp": (1.26e-08, 6.21e-04, 9.69e-02, 8.25e-02),
    "lenet": (3.35e-08, 1.76e-05, 4.17e-02, 3.89e-02),
    "autoencoder": (1.69e-02, 4.57e-02, 1.65e-02, 4.52e-02),
    "lstm": (1.63e-06, 1.35e-02, 1.55e-01, 1.28e-01),
}
PAPER_TABLES1 = {  # SGD-train, LBFGS-train, SGD-test, LBFGS-test: (mean, std)
    "fcp": {"SGD-train": (-1.44e-3, 0.139), "LBFGS-train": (-2.47e-3, 0.234),
            "SGD-test": (-3.17e-3, 0.103), "LBFGS-test": (-4.11e-3, 0.122)},
    "lenet": {"SGD-train": (-3.57e-3, 0.0877), "LBFGS-train": (1.04e-3, 0.108),
              "SGD-test": (-2.83e-3, 0.0706), "LBFGS-test": (2.33e-4, 0.0800)},
    "autoencoder": {"SGD-train": (-7.06e-3, 0.0854), "LBFGS-train": (-3.65e-2, 0.160),
                    "SGD-test": (-7.07e-3, 0.0854), "LBFGS-test": (-3.65e-2, 0.161)},
    "lstm": {"SGD-train": (1.35e-2, 0.324), "LBFGS-train": (1.06e-2, 0.733),
             "SGD-test": (1.16e-2, 0.259), "LBFGS-test": (2.92e-3, 0.476)},
}



def _separation_keys() -> list:
    return [(a, b, kernel) for a, b in COMBOS for kernel in KERNELS]


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3g}"


def render_report(config: dict, results: dict, sections=()) -> str:
    """report.md: the configuration, then each of ``sections`` (functions of the
    configuration and the results giving a section's lines, in the report's order:
    the stages' own, study.stages.report_sections()), then the paper's claims and the
    figures."""
    net = config["network"]
    lines = [f"# losstopo study: {net}, preset {config['preset']}", ""]
    lines.append(
        f"Data: {config['data']} ({config['n_train'] or 'all'} train / "
        f"{config['n_test'] or 'all'} test); {config['runs']} runs per optimizer, best "
        f"{config['keep']} kept; SGD {config['sgd_epochs']} epochs (lr {config['lr']}, batch "
        f"{config['batch_size']}); L-BFGS-GSS {config['lbfgs_iters']} iterations; "
        f"{config['pairs']} pairs per set, M = {config['n_points']}, lambda = {config['lam']}, "
        f"Adam lr {config['path_lr']} x {config['path_steps']} steps"
        + (f" on {config['path_batch']} samples drawn per step (barriers measured on all)"
           if config.get("path_batch") else "")
        + (f", {config['curve']} curves with {config['n_modes']} coefficient vectors (not the "
           "paper's sine series)" if config.get("curve", "fourier") != "fourier" else "")
        + f". losstopo {__version__}.")
    lines.append("")
    for section in sections:
        lines += section(config, results)
    lines += claims_section(config, results)
    figs = results.get("figures")
    if figs:
        lines += ["## Figures", ""]
        lines += [f"![{f}]({f})" for f in figs if f.endswith(".png")]
        lines.append("")
    return "\n".join(lines)


def _interval(iv) -> str:
    """'median [low, high]' of an interval record [median, low, high, ...]."""
    return f"{_fmt(iv[0])} [{_fmt(iv[1])}, {_fmt(iv[2])}]"


def claim_line(r: dict) -> str:
    """One claim as the report prints it: its verdict, the claim, the effect with its
    interval, the p-value (and Holm's), n, and why it is inconclusive (with the sample
    that would resolve it)."""
    head = f"- **{r['verdict']}**: {r['claim']}"
    c = r.get("comparison")
    if c is None:
        return head + (f" ({r['reason']})" if r.get("reason") else "") + (
            f" ({r['numbers']})" if r.get("numbers") else "")
    parts = []
    if c["scheme"] == "fixed":
        parts.append(f"{r['statistic']} = {_fmt(c['effect'])} (one deterministic "
                     "computation: no sampling uncertainty)")
    elif np.isfinite(c["effect"]):
        p = (f"p = {c['p']:.2g} ({c['test']}" + (
            f"; Holm {r['p_holm']:.2g})" if r.get("p_holm") is not None else ")")
             if np.isfinite(c["p"]) else "no p-value")
        parts.append(f"{r['statistic']} {_fmt(c['effect'])}, 95% interval "
                     f"[{_fmt(c['low'])}, {_fmt(c['high'])}]; {p}")
    ns = " + ".join(str(n) for n in c["n_solutions"])
    if r["unit"] == "pairs" and c.get("n_pairs"):
        parts.append(" + ".join(str(n) for n in c["n_pairs"]) + f" pairs on {ns} solutions"
                     + (" (failed pairs left out: "
                        + " + ".join(str(d) for d in c["dropped"]) + ")"
                        if any(c["dropped"]) else ""))
    elif c["scheme"] != "fixed":
        parts.append(f"{ns} {r['unit']}")
    if r.get("numbers"):
        parts.append(r["numbers"])
    line = head + ": " + "; ".join(parts)
    if r["verdict"] == "inconclusive" and r.get("reason"):
        line += f". Inconclusive: {r['reason']}"
        if r.get("needed"):
            line += (f"; about {r['needed']} {r['unit']} per set would "
                     "resolve the observed effect (80% power at the corrected level, "
                     "scaled from this interval and p-value)")
    elif r.get("reason"):
        line += f" ({r['reason']})"
    return line + "."


def claims_section(config: dict, results: dict) -> list:
    """Every claim, the paper's and ours, with its verdict and uncertainty
    (the verdicts stage's records; the toy claims decided from the plot stage's
    summary)."""
    from .claims import NOT_TESTED, with_toy

    found = with_toy(results.get("claims") or [], results.get("toy"))
    lines = ["## The paper's claims, checked on this run", ""]
    if not found:
        return lines + ["Not tested: the verdicts stage has not run.", ""]
    family = max((r.get("family", 0) for r in found), default=0)
    lines += [
        "Each claim with its effect, 95% interval and p-value. Intervals are percentile "
        "bootstraps in which whole solutions are resampled, never single pairs: barriers "
        "of pairs that share a solution are not independent, so pairs are resampled in "
        "whole clusters of pairs joined by shared solutions, or, where the pairs share "
        "solutions too much for that, through their solutions. p-values come from "
        "permutations of whole units between the two sets where such a permutation "
        "exists, else from the bootstrap. Holm's correction runs over the "
        f"{family} claims with a p-value. **held**: the interval excludes 0 on the "
        "claimed side and the corrected p-value is below 0.05; **contradicted**: the "
        "same on the other side; **inconclusive**: neither, with the reason. Seeded "
        f"(seed {config.get('seed', 0)}): a rerun gives the same numbers.", ""]
    counts = {v: sum(r["verdict"] == v for r in found)
              for v in ("held", "contradicted", "inconclusive", NOT_TESTED)}
    lines += [", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".", ""]
    lines += [claim_line(r) for r in found if r.get("group", "paper") == "paper"]
    beyond = [r for r in found if r.get("group") == "beyond"]
    if beyond:
        lines += ["", "Beyond the paper:", ""] + [claim_line(r) for r in beyond]
    lines.append("")
    return lines


def tables_section(config: dict, results: dict) -> list:
    """Table I and Table S1 beside the paper's (the train stage)."""
    net = config["network"]
    lines = []
    t1 = results.get("table1")
    if t1:
        p = PAPER_TABLE1.get(net, (None,) * 4)
        lines += ["## Table I: mean loss of the kept runs", "",
                  "| | train L-BFGS | train SGD | test L-BFGS | test SGD |", "|---|---|---|---|---|",
                  f"| ours | {_fmt(t1['train_lbfgs'])} | {_fmt(t1['train_sgd'])} | "
                  f"{_fmt(t1['test_lbfgs'])} | {_fmt(t1['test_sgd'])} |",
                  f"| paper | {_fmt(p[0])} | {_fmt(p[1])} | {_fmt(p[2])} | {_fmt(p[3])} |"]
        iv = (results.get("intervals") or {}).get("table1")
        if iv:
            cols = ("train_lbfgs", "train_sgd", "test_lbfgs", "test_sgd")
            lines += ["| ours: median [95% interval] | " + " | ".join(
                          _interval(iv[k]) if k in iv else "-" for k in cols) + " |",
                      "| ours: std across runs | " + " | ".join(
                          _fmt(iv[k][3]) if k in iv else "-" for k in cols) + " |"]
        lines.append("")
    ws = results.get("weight_stats")
    if ws:
        p = PAPER_TABLES1.get(net, {})
        lines += ["## Table S1: mean / std of all weights per set", "",
                  "| set | ours | paper |", "|---|---|---|"]
        for name in ("SGD-train", "LBFGS-train", "SGD-test", "LBFGS-test"):
            m, s = ws[name]
            pm = p.get(name)
            lines.append(f"| {name} | {_fmt(m)} / {_fmt(s)} | "
                         f"{_fmt(pm[0]) + ' / ' + _fmt(pm[1]) if pm else '-'} |")
        lines.append("")
    return lines


def barriers_section(config: dict, results: dict) -> list:
    """The barriers at their three levels (the paths stage)."""
    bars = results.get("barriers")
    if not bars:
        return []
    lines = ["## Barriers along found paths", "",
             "Three levels: the absolute barrier H = max loss on the path (the paper's), "
             "H minus the higher endpoint loss, and H minus the mean endpoint loss "
             "(Git Re-Basin's).", "",
             "Medians with their 95% intervals (bootstrap over the pairs' solutions; see "
             "the claims).", "",
             "| set @ landscape | pairs | median H | H: 25% - 75% | median H - max endpoint "
             "| median H - mean endpoint | median refined H | median straight-line H |",
             "|---|---|---|---|---|---|---|---|"]
    ivs = (results.get("intervals") or {}).get("barriers") or {}

    def med(key, level, fallback):
        iv = ivs.get(key, {}).get(level)
        ok = iv and all(x is not None and np.isfinite(x) for x in iv[:3])
        return _interval(iv) if ok else _fmt(fallback)

    for key in barrier_keys():  # the code's order, never the manifest's dict order
        v = bars.get(key)
        if v is None:
            continue
        lines.append(f"| {key} | {v['pairs']} | {med(key, 'barrier', v['median'])} | "
                     f"{_fmt(v['q25'])} - {_fmt(v['q75'])} | "
                     f"{med(key, 'barrier_rel', v['median_rel'])} | "
                     f"{med(key, 'barrier_mean', v.get('median_mean', float('nan')))} | "
                     f"{_fmt(v['median_refined'])} | {_fmt(v['median_straight'])} |")
    lines.append("")
    return lines


def certified_section(config: dict, results: dict) -> list:
    """Certified barriers (the certify stage): each pair's status, and the refined
    barriers beside the paper's fixed-budget ones of the same pairs."""
    cert = results.get("certified")
    if not cert:
        return []
    lines = ["## Certified barriers (not in the paper)", "",
             "The first pairs of each set's paths, each path refined to a minimum-energy path "
             "(a nudged elastic band of the paths' M images, moved by L-BFGS on its force) "
             "and, where a barrier remains, its highest image driven to a saddle whose "
             "curvature and connection to both endpoints are checked. **certified**: an "
             "index-1 saddle whose descents reach both endpoints' basins; **barrier-free**: "
             "a path (the band's chain of straight segments) that never rises above the "
             "higher endpoint by more than the tolerance (1e-3 of the median rise of the "
             "same pairs' paths at the paper's budget); **bound only**: the refined path's "
             "maximum, an upper bound, with the reason nothing more is proven (SGD's "
             "solutions are not minima, so no saddle between them is certified).", "",
             "| set @ landscape | pairs | certified | barrier-free | bound only | median H, "
             "paper's budget | median H, refined | median H - max endpoint, refined | "
             "loss+grad points / Hessian-vector products per pair (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in barrier_keys():
        v = cert.get(key)
        if v is None:
            continue
        n = v["counts"]
        lines.append(f"| {key} | {v['pairs']} | {n['certified']} | {n['barrier-free']} | "
                     f"{n['bound only']} | {_fmt(v['median_paper'])} | {_fmt(v['median'])} | "
                     f"{_fmt(v['median_rel'])} | {_fmt(v['median_gradients'])} / "
                     f"{_fmt(v['median_hessian_vector'])} |")
    lines.append("")
    reasons = sorted({r for v in cert.values() for r in v.get("reasons", ())})
    if reasons:
        lines += ["Why the bounds are bounds: " + "; ".join(reasons) + ".", ""]
    claims = [r for r in results.get("claims") or []
              if r.get("key") == "certified" and r.get("comparison")]
    if claims:
        lines += [claim_line(r) for r in claims] + [""]
    return lines


def map_section(config: dict, results: dict) -> list:
    """The map of minima (the map stage): where each training set's minima join, the
    basins below a few levels, and how the graph settled pass by pass."""
    maps = results.get("map")
    if not maps:
        return []
    first = next(iter(maps.values()))
    m, names = first["minima_per_set"], list(first["summary"]["sets"])
    steps = config.get("map_steps") or config["path_steps"]
    batch = config.get("map_batch") or config.get("path_batch")
    how = (f"{steps} Adam steps on {batch} samples drawn per step, each path then measured "
           "on all samples" if batch else f"{steps} Adam steps on all samples")
    lines = ["## The map of minima (not in the paper)", "",
             f"The first {m} solutions of each training set as one network of minima on "
             f"the training landscape: paths ({how}) along the minimum "
             "spanning tree of their distances, then connect passes, each the closest "
             "unmeasured pair across every join with room above its endpoints "
             "(losstopo.topography). Two minima join at the lowest barrier over all paths "
             "through other minima (single linkage of the barriers): the level at which "
             "the disconnectivity graph (figures/disconnectivity) merges them. Its edges "
             "are the paths' refined maxima, upper bounds (**bound**), so every join "
             "level is an upper bound too; **aligned**: every solution permuted to match "
             "the first (weight matching) before its paths are found.", "",
             "| view | set | minima | all its minima join at | that join is | "
             "median loss |", "|---|---|---|---|---|---|"]
    for view, v in maps.items():
        for name, s in v["summary"]["sets"].items():
            lines.append(f"| {view} | {name} | {s['minima']} | {_fmt(s['join_level'])} | "
                         f"{s['join_status']} | {_fmt(s['median_loss'])} |")
    lines += ["", "| view | below level | basins | mixed basins | "
              + " | ".join(f"{n} basins" for n in names) + " |",
              "|---|---|---|---|" + "---|" * len(names)]
    for view, v in maps.items():
        for b in v["summary"]["basins"]:
            lines.append(f"| {view} | {_fmt(b['level'])} | {b['basins']} | {b['mixed']} | "
                         + " | ".join(str(b["per_set"][n]) for n in names) + " |")
    lines.append("")
    for view, v in maps.items():
        steps = "; ".join(f"{h['label']} ({h['edges']} edges, "
                          f"{100 * h['changed']:.0f}% of joins moved)" for h in v["history"])
        lines.append(f"Settling ({view}): {steps}.")
    sets = maps.get("raw", first)["summary"]["sets"]
    sgd, lb = sets.get("SGD-train"), sets.get("LBFGS-train")
    if sgd and lb and sgd["join_level"] is not None and lb["join_level"] is not None:
        if sgd["join_level"] == lb["join_level"]:
            which = ("both join at the same level (the edge that joins each set's last "
                     "basins joins the two sets too)")
        else:
            which = ("SGD's" if sgd["join_level"] < lb["join_level"] else "L-BFGS's") \
                + " join lower"
        lines += ["", f"In topographic terms (raw): SGD's minima all join at "
                  f"{_fmt(sgd['join_level'])} and L-BFGS's at {_fmt(lb['join_level'])}, so "
                  f"{which}, on {m} minima per set and upper bounds; no interval is given "
                  "(a join level is one number per set, not a sample). Join levels are "
                  "losses, as the paper's H: no minimum joins another below its own loss "
                  "(the table's median losses)."]
    claims = [r for r in results.get("claims") or []
              if r.get("key") == "map" and r.get("comparison")]
    if claims:
        lines += ["", "Each pair of a set's minima joins at one level; the medians of those "
                  "levels compared, with the set's minima resampled (the network itself, an "
                  "upper bound on every level, held fixed):", ""]
        lines += [claim_line(r) for r in claims]
    return lines + [""]


def kpca_section(config: dict, results: dict) -> list:
    """The separation along PC1 of every pair of sets and kernel (the embed stage)."""
    seps = results.get("separation")
    if not seps:
        return []
    lines = ["## Kernel PCA: separation of the two sets along PC1", "",
             "AUC with its 95% interval (the solutions of each set resampled, kernel PCA "
             "done again on each resample) and the label-permutation null: its p-value and "
             "the AUC that 95% of random labellings stay below.", "",
             "| sets | kernel | AUC (1 = separated, 0.5 = mixed) | 95% interval | null: p "
             "(95% point) | Fisher ratio |", "|---|---|---|---|---|---|"]
    ivs = (results.get("intervals") or {}).get("separation") or {}
    for a, b, kernel in _separation_keys():  # the code's order, as above
        v = seps.get(f"{a}|{b}|{kernel}")
        if v is None:
            continue
        iv = ivs.get(f"{a}|{b}|{kernel}")
        extra = (f"{iv['low']:.3f} - {iv['high']:.3f} | {iv['p_null']:.2g} ({iv['null95']:.3f})"
                 if iv else "- | -")
        lines.append(f"| {a} + {b} | {kernel} | {v['auc']:.3f} | {extra} | "
                     f"{_fmt(v['fisher'])} |")
    lines.append("")
    return lines


def bandwidth_section(config: dict, results: dict) -> list:
    """Kernel PCA's separation against the RBF bandwidth, the sets' scales, and what
    the numbers say drives the separation."""
    sweep, scales = results.get("bandwidth"), results.get("set_geometry")
    if not sweep:
        return []

    pairs = [f"{a}|{b}" for a, b in COMBOS if f"{a}|{b}" in sweep]  # the code's order
    if not pairs:
        return []
    gds = [r["gamma_d"] for r in sweep[pairs[0]]]
    ivs = (results.get("intervals") or {}).get("bandwidth") or {}
    lines = ["## Kernel PCA against the RBF bandwidth", "",
             "PC1 AUC (Fisher ratio) of RBF kernel PCA with gamma = g / D; g = 1 is the "
             "paper's 2 sigma^2 = D."
             + (" Below each AUC, its 95% interval and, in brackets, the AUC that 95% of "
                "random labellings of the same solutions stay below (the null band)."
                if ivs else ""), "",
             "| sets | " + " | ".join(f"g = {g:g}" for g in gds) + " |",
             "|---|" + "---|" * len(gds)]
    first = {}
    for key in pairs:
        rows = sweep[key]
        lines.append(f"| {key.replace('|', ' + ')} | "
                     + " | ".join(f"{r['auc']:.2f} ({_fmt(r['fisher'])})" for r in rows) + " |")
        if key in ivs:
            lines.append("| (interval; null) | " + " | ".join(
                f"{r['low']:.2f} - {r['high']:.2f}; {r['null95']:.2f}" for r in ivs[key]) + " |")
        hit = [r["gamma_d"] for r in rows if r["auc"] >= 0.9]
        first[key] = hit[0] if hit else None
    lines.append("")
    if scales:
        lines += ["| set | median norm | median mutual distance (quartiles) | RMS distance "
                  "per parameter r |", "|---|---|---|---|"]
        for name in (n for n in SETS if n in scales):
            g = scales[name]
            lines.append(f"| {name} | {_fmt(g['norm_median'])} | {_fmt(g['dist_median'])} "
                         f"({_fmt(g['dist_q25'])} - {_fmt(g['dist_q75'])}) | "
                         f"{_fmt(g['dist_rms_per_param'])} |")
        lines.append("")
        key = pairs[0]
        a, b = key.split("|")
        if a in scales and b in scales:
            r = 0.5 * (scales[a]["dist_rms_per_param"] + scales[b]["dist_rms_per_param"])
            k1 = float(np.exp(-(r ** 2)))
            g = first[key]
            aucs = [row["auc"] for row in sweep[key]]
            lo, hi = min(aucs), max(aucs)
            spread = hi - lo
            tail = (f"AUC first reaches 0.9 at g = {g:g}, where the kernel between two "
                    f"typical solutions is exp(-g r^2) = {np.exp(-g * r ** 2):.3g}"
                    if g is not None else
                    f"AUC stays below 0.9 up to g = {gds[-1]:g}")
            lines += [
                f"What drives the separation ({a} + {b}): the RBF kernel compares squared "
                f"distances with 1 / gamma = D / g, so it sees the solutions through "
                f"exp(-g r^2), r the RMS mutual distance per parameter (here r = {r:.3g}). "
                f"At the paper's g = 1 that is {k1:.3g}: "
                + ("every pair of solutions looks nearly alike, the kernel is close to "
                   "constant and PC1 carries little of the sets' difference; "
                   if k1 > 0.8 else "the kernel already resolves the distances; ")
                + tail + ". " + (
                    "The separation is thus a property of the bandwidth against the "
                    "solutions' distances, and the paper's claim holds or fails with the "
                    "bandwidth it chose." if spread > 0.1 else
                    f"Here the AUC hardly changes with the bandwidth ({lo:.2f} to {hi:.2f}), "
                    "so the bandwidth is not what decides the separation in this run."), ""]
    return lines


def toy_section(config: dict, results: dict) -> list:
    """The paper's Fig. 3: the toy paths at lambda = 10, 100 and 1000, and what makes
    them loop back on themselves."""
    toy = results.get("toy")
    if not toy:
        return []
    from ..toy import FEW_MODES, SETTINGS, WELL_RADIUS

    lams = sorted(toy, key=float)
    lines = ["## Fig. 3: paths on the 2-D toy landscape", "",
             f"M = {SETTINGS['n_points']} points, {SETTINGS['n_modes']} modes, Adam lr "
             f"{SETTINGS['lr']} x {SETTINGS['steps']} steps, sum objective (the paper's); the "
             "straight line's barrier is 1.102. Backwards: the fraction of the path's length "
             "that runs against the direction from start to end (a loop); in wells: the "
             f"fraction of the M points within {WELL_RADIUS} of a minimum.", "",
             "| lambda | H (paper) | H (ours, refined) | length | backwards | points in wells "
             f"| backwards with {FEW_MODES} modes |", "|---|---|---|---|---|---|---|"]
    for lam in lams:
        v = toy[lam]
        lines.append(f"| {lam} | {_fmt(v['paper'])} | {v['barrier_refined']:.3f} | "
                     f"{v['length']:.3f} | {100 * v['backtracking']:.1f}% | "
                     f"{100 * v['in_wells']:.0f}% | {100 * v['few_modes']['backtracking']:.1f}% |")
    lines.append("")
    lo, hi = toy[lams[0]], toy[lams[-1]]
    penalty = hi["backtracking"] < 0.5 * lo["backtracking"]
    modes = all(toy[lam]["few_modes"]["backtracking"] < 0.5 * toy[lam]["backtracking"]
                for lam in lams if toy[lam]["backtracking"] > 0.01)
    lines += [
        "Why the paths loop near the endpoints: the sum objective lowers its value by "
        "moving path points into the two wells, where the landscape is low and flat; the "
        "points are fixed in t, so the curve can crowd them there only by folding back "
        f"on itself (at lambda = {lams[0]}, {100 * lo['in_wells']:.0f}% of the points sit in "
        f"the wells and {100 * lo['backtracking']:.0f}% of the length runs backwards). The "
        "stretching penalty sums squared steps and is lowest for evenly spaced points, so "
        "it works against the crowding: "
        + (f"at lambda = {lams[-1]} the loops are {'gone' if hi['backtracking'] < 0.005 else 'smaller'} "
           f"({100 * hi['backtracking']:.1f}% backwards, {100 * hi['in_wells']:.0f}% of the "
           "points in the wells). " if penalty else
           f"here it does not remove them ({100 * hi['backtracking']:.1f}% backwards at "
           f"lambda = {lams[-1]}). ")
        + (f"Fewer modes ({FEW_MODES}) also remove them." if modes else
           f"Fewer modes ({FEW_MODES}) do not remove them: the loops come from the "
           "objective, not from the basis."),
        ""]
    return lines


def convergence_section(config: dict, results: dict) -> list:
    """The barrier against the path's step budget, the minimax reference, and whether
    the paper's budget converges and the SGD < L-BFGS ordering depends on it."""
    conv = results.get("convergence")
    if not conv:
        return []

    names = [n for n in SETS if n in conv]
    steps = conv[names[0]]["steps"]
    cert = certified_of(conv, results.get("certified") or {})
    minimax = any(np.isfinite(conv[n]["reference"]) for n in names)
    lines = ["## Path convergence: the barrier against the number of Adam steps", "",
             "Median refined barrier H of the same pairs after each budget (the paper's is "
             "100 steps), from one optimization per pair, on the training landscape"
             + ("; the certify stage's refined barrier of the same pairs (certified, "
                "barrier-free or a bound: the statuses in brackets) is the reference"
                if cert else "")
             + ("; the minimax objective run for the longest budget is "
                + ("a second reference." if cert else "the converged reference.")
                if minimax else "."), "",
             "| set | pairs | " + " | ".join(f"{k} steps" for k in steps)
             + (" | minimax reference" if minimax else "")
             + (" | refined (certify stage)" if cert else "") + " |",
             "|---|---|" + "---|" * (len(steps) + minimax + bool(cert))]
    for name in names:
        v = conv[name]
        lines.append(f"| {name} | {v['pairs']} | " + " | ".join(_fmt(h) for h in v["median"])
                     + (f" | {_fmt(v['reference'])}" if minimax else "")
                     + (f" | {_fmt(cert[name][0])} ({cert[name][1]})" if name in cert
                        else " | -" if cert else "") + " |")
    lines.append("")
    sentences = []
    if cert:
        i, j = (steps.index(100) if 100 in steps else 0), len(steps) - 1
        ratio = [conv[n]["median"][i] / cert[n][0] for n in names
                 if n in cert and cert[n][0] > 0]
        ratio_j = [conv[n]["median"][j] / cert[n][0] for n in names
                   if n in cert and cert[n][0] > 0]
        if ratio:
            sentences.append(
                f"Against the refined barriers of the same pairs, {steps[i]} steps "
                f"{'(the paper' + chr(39) + 's) ' if steps[i] == 100 else ''}end "
                f"{min(ratio):.3g}x to {max(ratio):.3g}x above them, and {steps[j]} steps "
                f"{min(ratio_j):.3g}x to {max(ratio_j):.3g}x: the fixed budgets are bounds "
                "whose slack the refinement measures.")
    if 100 in steps and minimax:
        i, j = steps.index(100), len(steps) - 1
        drop = [(conv[n]["median"][i] - conv[n]["median"][j]) / conv[n]["median"][j]
                for n in names]
        gap = [(conv[n]["median"][j] - conv[n]["reference"]) / conv[n]["reference"]
               for n in names]
        above = [n for n, g in zip(names, gap) if g < -0.05]
        moves = ", ".join(f"{n} {_fmt(conv[n]['median'][i])} -> {_fmt(conv[n]['median'][j])}"
                          for n in names)
        sentences.append(
            f"At the paper's 100 steps the median barrier lies {100 * min(drop):.1f}% to "
            f"{100 * max(drop):.1f}% above its value after {steps[j]} steps "
            f"({moves}), "
            + ("so the paper's budget has converged the barrier." if max(drop) < 0.05 else
               "so the paper's budget has not converged the barrier.")
            + (f" The minimax run of {steps[j]} steps is no tighter bound here: it ends above "
               f"the sum objective's {steps[j]}-step barrier for {', '.join(above)}, so it has "
               "not converged either; where it is not above, the two agree within "
               f"{100 * max([abs(g) for g in gap if g >= -0.05] or [0]):.0f}%."
               if above else
               f" After {steps[j]} steps the barrier differs from the minimax reference by "
               f"{100 * min(gap):+.1f}% to {100 * max(gap):+.1f}%."))
    few = min(conv[n]["pairs"] for n in names)
    if few < 3:
        sentences.append(
            f"The orderings below come from {few} pair{'s' if few > 1 else ''} per set: "
            "they show how the budget moves the numbers, not whether a set's barriers are "
            "lower (that needs more pairs: see the claims).")
    for kind in ("train", "test"):
        a, b = conv.get(f"SGD-{kind}"), conv.get(f"LBFGS-{kind}")
        if a and b:
            order = [x < y for x, y in zip(a["median"], b["median"])]
            sentences.append(
                f"SGD < L-BFGS ({kind} sets): "
                + ("holds at every budget." if all(order) else
                   "fails at every budget." if not any(order) else
                   "depends on the budget (holds at "
                   + ", ".join(str(k) for k, o in zip(steps, order) if o) + " steps).")
                + (f" With the minimax reference: "
                   f"{'holds' if a['reference'] < b['reference'] else 'fails'}."
                   if minimax else "")
                + _refined_order(cert, kind))
    lines += [" ".join(sentences), ""]
    return lines


def _refined_order(cert: dict, kind: str) -> str:
    a, b = cert.get(f"SGD-{kind}"), cert.get(f"LBFGS-{kind}")
    if not a or not b:
        return ""
    return f" With the refined barriers: {'holds' if a[0] < b[0] else 'fails'}."


def certified_of(conv: dict, certified: dict) -> dict:
    """{set: (median refined barrier, statuses)} of the convergence stage's pairs (the
    first pairs of each set on the training landscape, which the certify stage
    refined too when it covers as many)."""
    out = {}
    for name, v in conv.items():
        c = certified.get(f"{name}@train")
        k = v["pairs"]
        if not c or len(c.get("barriers", ())) < k or not k:
            continue
        st = c["statuses"][:k]
        out[name] = (float(np.median(c["barriers"][:k])),
                     ", ".join(f"{st.count(x)} {x}" for x in dict.fromkeys(st)))
    return out


def alignment_section(config: dict, results: dict) -> list:
    """Barriers and kernel PCA with and without permutation alignment (weight
    matching), and whether the barrier ordering survives it."""
    al = results.get("alignment")
    if not al:
        return []

    names = [n for n in SETS if n in al]
    lines = ["## Permutation alignment (not in the paper)", "",
             "The same pairs on the training landscape, with the second endpoint's hidden "
             "units permuted to match the first by weight matching (Git Re-Basin) before "
             "the path is found; distances are between the two endpoints.", "",
             "| set | pairs | median H unaligned | median H aligned | median H - max endpoint "
             "unaligned / aligned | median distance before -> after |",
             "|---|---|---|---|---|---|"]
    for n in names:
        v = al[n]
        lines.append(f"| {n} | {v['pairs']} | {_fmt(v['median_unaligned'])} | "
                     f"{_fmt(v['median'])} | {_fmt(v['median_rel_unaligned'])} / "
                     f"{_fmt(v['median_rel'])} | {_fmt(v['distance_before'])} -> "
                     f"{_fmt(v['distance_after'])} |")
    lines.append("")
    aligned = [r for r in results.get("claims") or []
               if r.get("key") == "alignment" and r.get("comparison")]
    if aligned:
        lines += [claim_line(r) for r in aligned] + [""]
    seps, plain = results.get("aligned_separation") or {}, results.get("separation") or {}
    rows = [(a, b) for a, b in COMBOS if f"{a}|{b}|rbf" in seps]
    if rows:
        lines += ["RBF kernel PCA at the paper's bandwidth, unaligned and with every solution "
                  "of the two sets aligned to a common reference (the first solution):", "",
                  "| sets | PC1 AUC unaligned | PC1 AUC aligned |", "|---|---|---|"]
        for a, b in rows:
            u = plain.get(f"{a}|{b}|rbf")
            lines.append(f"| {a} + {b} | {u['auc']:.3f} | " if u else f"| {a} + {b} | - | ")
            lines[-1] += f"{seps[f'{a}|{b}|rbf']['auc']:.3f} |"
        lines.append("")
    return lines


def curves_section(config: dict, results: dict) -> list:
    """The barrier each curve family finds on the 2-D landscapes against the saddle."""
    curves = results.get("curves")
    if not curves:
        return []
    lines = ["## Curve families (not in the paper)", "",
             "The same path finder with other bases: Bezier (Bernstein polynomials) and a "
             "polygonal chain of fixed pivots, with as many coefficient vectors as the "
             "paper's 10 modes, and Garipov et al.'s quadratic Bezier curve (K = 1). "
             "Refined barrier, and its excess over the known saddle (the lowest barrier "
             "any path can have).", "",
             "| landscape | objective | " + " | ".join(
                 f"{r['curve']} K={r['K']}" for r in next(iter(curves.values()))["rows"]
                 if r["objective"] == "sum") + " |"]
    head = [r for r in next(iter(curves.values()))["rows"] if r["objective"] == "sum"]
    lines.append("|---|---|" + "---|" * len(head))
    for name, v in curves.items():
        for objective in ("sum", "minimax"):
            rows = [r for r in v["rows"] if r["objective"] == objective]
            lines.append(f"| {name} (saddle {v['saddle']:g}) | {objective} | " + " | ".join(
                f"{r['barrier']:.4f} ({r['barrier'] - v['saddle']:+.4f})" for r in rows) + " |")
    lines.append("")
    words, excess = [], {}
    for objective in ("sum", "minimax"):
        excess[objective] = [r["barrier"] - v["saddle"] for v in curves.values()
                             for r in v["rows"] if r["objective"] == objective and r["K"] > 1]
        words.append(f"with the {objective} objective the families' barriers lie "
                     f"{min(excess[objective]):+.4f} to {max(excess[objective]):+.4f} above "
                     "the saddle")
    tail = (" The objective decides more than the basis: the sum objective trades the "
            "barrier for low energy elsewhere on the path, minimax aims at the saddle."
            if max(excess["minimax"]) < min(excess["sum"]) else "")
    lines += ["How the family changes the barrier (K = 10): " + "; ".join(words) + "." + tail,
              ""]
    return lines


def curvature_section(config: dict, results: dict) -> list:
    """Sharpness per set, the spectral densities, the slices, and whether L-BFGS
    minima are sharper than SGD minima."""
    cur = results.get("curvature")
    if not cur:
        return []

    lines = ["## Curvature (not in the paper)", "",
             "Sharpness on the training landscape from exact Hessian-vector products: the "
             "largest eigenvalue (Lanczos, to 1e-3) and the trace (Hutchinson, 32 Rademacher "
             "probes; its standard error beside it).", "",
             "| set | solutions | median top eigenvalue [95% interval] | median trace "
             "(median s.e.) |", "|---|---|---|---|"]
    ivs = (results.get("intervals") or {}).get("sharpness") or {}
    for n in SETS:
        v = cur.get(n)
        if v:
            top = _interval(ivs[n]) if n in ivs else _fmt(v["median_top"])
            lines.append(f"| {n} | {v['solutions']} | {top} | "
                         f"{_fmt(v['median_trace'])} ({_fmt(v['median_trace_se'])}) |")
    lines.append("")
    sharp = [r for r in results.get("claims") or []
             if r.get("key") == "sharpness" and r.get("comparison")]
    lines += [claim_line(r) for r in sharp]
    t1 = results.get("table1")
    if t1 and sharp:
        lines += ["", "Sharpness is not invariant to reparametrization (Dinh et al. 2017); with "
                  "the cross-entropy the Hessian shrinks with the loss as the softmax "
                  "saturates, so a set whose training loss is far lower is flatter by this "
                  f"measure for that reason alone (mean training loss of the kept runs: "
                  f"L-BFGS {_fmt(t1['train_lbfgs'])}, SGD {_fmt(t1['train_sgd'])}; the test "
                  "sets are snapshots at each run's test-loss minimum, earlier in training)."]
    dens = results.get("hessian_density") or {}
    if dens:
        lines += ["", "Spectral density (stochastic Lanczos quadrature, 4 probes x 48 steps) at "
                  "each optimizer's solution of lowest training loss: "
                  + "; ".join(f"{k}: eigenvalues {_fmt(dens[k]['min'])} to "
                              f"{_fmt(dens[k]['max'])}, trace {_fmt(dens[k]['trace'])}"
                              for k in ("SGD", "LBFGS") if k in dens) + "."]
    sl = results.get("slices") or {}
    if sl:
        lines += ["", "2-D slices (filter-normalized directions through each optimizer's "
                  "solution of lowest training loss; the plane of the two best SGD solutions "
                  "and the best L-BFGS solution): "
                  + "; ".join(f"{k}: loss {_fmt(sl[k]['min_loss'])} to "
                              f"{_fmt(sl[k]['max_loss'])}" for k in SLICES if k in sl) + "."]
    lines.append("")
    return lines
