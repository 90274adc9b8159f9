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
    lines += ["## The paper's claims, checked on this run", "",
              "Every claim of the paper, in its order: held, did not hold, or not tested "
              "(its stage has not run), with the numbers behind it.", ""]
    for c in claims_of(net, results):
        verdict = {True: "held", False: "did not hold", None: "not tested"}[c["held"]]
        lines.append(f"- **{verdict}**: {c['claim']}" + (f" ({c['numbers']})" if c["numbers"]
                                                         else ""))
    lines.append("")
    figs = results.get("figures")
    if figs:
        lines += ["## Figures", ""]
        lines += [f"![{f}]({f})" for f in figs if f.endswith(".png")]
        lines.append("")
    return "\n".join(lines)


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
                  f"| paper | {_fmt(p[0])} | {_fmt(p[1])} | {_fmt(p[2])} | {_fmt(p[3])} |", ""]
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
             "| set @ landscape | pairs | median H | H: 25% - 75% | median H - max endpoint "
             "| median H - mean endpoint | median refined H | median straight-line H |",
             "|---|---|---|---|---|---|---|---|"]
    for key in barrier_keys():  # the code's order, never the manifest's dict order
        v = bars.get(key)
        if v is None:
            continue
        lines.append(f"| {key} | {v['pairs']} | {_fmt(v['median'])} | {_fmt(v['q25'])} - "
                     f"{_fmt(v['q75'])} | {_fmt(v['median_rel'])} | "
                     f"{_fmt(v.get('median_mean', float('nan')))} | "
                     f"{_fmt(v['median_refined'])} | {_fmt(v['median_straight'])} |")
    lines.append("")
    return lines


def kpca_section(config: dict, results: dict) -> list:
    """The separation along PC1 of every pair of sets and kernel (the embed stage)."""
    seps = results.get("separation")
    if not seps:
        return []
    lines = ["## Kernel PCA: separation of the two sets along PC1", "",
             "| sets | kernel | AUC (1 = separated, 0.5 = mixed) | Fisher ratio |",
             "|---|---|---|---|"]
    for a, b, kernel in _separation_keys():  # the code's order, as above
        v = seps.get(f"{a}|{b}|{kernel}")
        if v is None:
            continue
        lines.append(f"| {a} + {b} | {kernel} | {v['auc']:.3f} | {_fmt(v['fisher'])} |")
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
    lines = ["## Kernel PCA against the RBF bandwidth", "",
             "PC1 AUC (Fisher ratio) of RBF kernel PCA with gamma = g / D; g = 1 is the "
             "paper's 2 sigma^2 = D.", "",
             "| sets | " + " | ".join(f"g = {g:g}" for g in gds) + " |",
             "|---|" + "---|" * len(gds)]
    first = {}
    for key in pairs:
        rows = sweep[key]
        lines.append(f"| {key.replace('|', ' + ')} | "
                     + " | ".join(f"{r['auc']:.2f} ({_fmt(r['fisher'])})" for r in rows) + " |")
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


def _claim(claim: str, held, numbers: str = "") -> dict:
    return dict(claim=claim, held=None if held is None else bool(held), numbers=numbers)


def _median(v) -> float:
    return float(np.median(np.asarray(v, dtype=np.float64)))


def claims_of(net: str, results: dict) -> list:
    """Every claim of the paper that a study of ``net`` can check, in the paper's
    order: dicts of the claim, ``held`` (True, False, or None where the results to
    test it are missing) and the numbers behind the verdict."""
    out = []
    ae = net == "autoencoder"
    t1 = results.get("table1")
    text = "L-BFGS reaches a lower training loss than SGD (Table I)"
    out.append(_claim(text, None) if not t1 else _claim(
        text, t1["train_lbfgs"] < t1["train_sgd"],
        f"L-BFGS {_fmt(t1['train_lbfgs'])}, SGD {_fmt(t1['train_sgd'])}"))
    text = ("the autoencoder's exception: L-BFGS also reaches the lower test loss (Table I: "
            "1.65e-2 against 4.52e-2)" if ae else
            "SGD solutions generalize better: lower test loss at the test minimum (Table I)")
    out.append(_claim(text, None) if not t1 else _claim(
        text, (t1["test_lbfgs"] < t1["test_sgd"]) if ae else (t1["test_sgd"] < t1["test_lbfgs"]),
        f"L-BFGS {_fmt(t1['test_lbfgs'])}, SGD {_fmt(t1['test_sgd'])}"))
    ws = results.get("weight_stats")
    for kind in ("train", "test"):
        text = f"L-BFGS weights spread wider than SGD's (Table S1, std, {kind} sets)"
        a, b = f"LBFGS-{kind}", f"SGD-{kind}"
        out.append(_claim(text, None) if not ws or a not in ws or b not in ws else _claim(
            text, ws[a][1] > ws[b][1], f"L-BFGS {_fmt(ws[a][1])}, SGD {_fmt(ws[b][1])}"))
    d = results.get("centroid_distances")
    text = "L-BFGS solutions lie farther from the common centroid (Fig. 5, train sets)"
    out.append(_claim(text, None) if not d or "LBFGS-train" not in d or "SGD-train" not in d
               else _claim(text, _median(d["LBFGS-train"]) > _median(d["SGD-train"]),
                           f"median distance L-BFGS {_fmt(_median(d['LBFGS-train']))}, SGD "
                           f"{_fmt(_median(d['SGD-train']))}"))
    bars = results.get("barriers") or {}
    levels = (("median", "absolute H, the paper's"), ("median_rel", "H - max endpoint"),
              ("median_mean", "H - mean endpoint"))
    for key, where in (("train@train", "train sets, training landscape"),
                       ("test@train", "test sets, training landscape"),
                       ("test@test", "test sets, test landscape")):
        kind, lname = key.split("@")
        a, b = bars.get(f"SGD-{kind}@{lname}"), bars.get(f"LBFGS-{kind}@{lname}")
        for level, name in levels:
            text = (f"the autoencoder's exception: SGD barriers are not lower than L-BFGS "
                    f"barriers ({where}; {name})" if ae else
                    f"SGD barriers are lower than L-BFGS barriers ({where}; {name})")
            if not a or not b or level not in a or level not in b:
                out.append(_claim(text, None))
                continue
            lower = a[level] < b[level]
            out.append(_claim(text, (not lower) if ae else lower,
                              f"median SGD {_fmt(a[level])}, L-BFGS {_fmt(b[level])}, "
                              f"{a['pairs']} and {b['pairs']} pairs"))
    seps = results.get("separation") or {}
    rbf, lin = seps.get("LBFGS-train|SGD-train|rbf"), seps.get("LBFGS-train|SGD-train|linear")
    text = ("RBF kernel PCA separates SGD from L-BFGS solutions along PC1 at the paper's "
            "bandwidth (train sets, AUC >= 0.9)")
    out.append(_claim(text, None) if not rbf else _claim(
        text, rbf["auc"] >= 0.9, f"AUC {rbf['auc']:.3f}, Fisher ratio {_fmt(rbf['fisher'])}"))
    rbf_t = seps.get("LBFGS-test|SGD-test|rbf")
    if net in ("fcp", "lenet"):
        text = ("with the two test sets the separation nearly disappears (AUC below 0.75 and "
                "below the train sets')")
        held = None if not rbf or not rbf_t else (
            rbf_t["auc"] < 0.75 and rbf_t["auc"] < rbf["auc"])
    else:
        text = "the two test sets separate as well (AUC >= 0.9)"
        held = None if not rbf_t else rbf_t["auc"] >= 0.9
    out.append(_claim(text, held) if held is None else _claim(
        text, held, f"test sets AUC {rbf_t['auc']:.3f}"
        + (f", train sets {rbf['auc']:.3f}" if rbf else "")))
    text = ("the separation is seen only with the RBF kernel (linear kernel PCA: AUC < 0.9 "
            "where the RBF kernel separates)")
    out.append(_claim(text, None) if not rbf or not lin else _claim(
        text, lin["auc"] < 0.9 <= rbf["auc"], f"linear AUC {lin['auc']:.3f}, RBF "
        f"{rbf['auc']:.3f}"))
    toy = results.get("toy")
    lams = sorted(toy, key=float) if toy else []
    text = ("Fig. 3: found paths on the toy landscape reach the paper's barriers "
            "(0.640 - 0.652, within 0.03, every lambda; straight line 1.102)")
    out.append(_claim(text, None) if not toy else _claim(
        text, all(abs(toy[k]["barrier_refined"] - toy[k]["paper"]) <= 0.03 for k in lams),
        ", ".join(f"lambda {k}: {toy[k]['barrier_refined']:.3f} (paper {toy[k]['paper']:.3f})"
                  for k in lams)))
    text = "Fig. 3: the barrier hardly depends on lambda (spread at most 0.05 over 10 - 1000)"
    if toy:
        hs = [toy[k]["barrier_refined"] for k in lams]
        out.append(_claim(text, max(hs) - min(hs) <= 0.05, f"spread {max(hs) - min(hs):.3f}"))
    else:
        out.append(_claim(text, None))
    return out


def convergence_section(config: dict, results: dict) -> list:
    """The barrier against the path's step budget, the minimax reference, and whether
    the paper's budget converges and the SGD < L-BFGS ordering depends on it."""
    conv = results.get("convergence")
    if not conv:
        return []

    names = [n for n in SETS if n in conv]
    steps = conv[names[0]]["steps"]
    lines = ["## Path convergence: the barrier against the number of Adam steps", "",
             "Median refined barrier H of the same pairs after each budget (the paper's is "
             "100 steps), from one optimization per pair, on the training landscape; the "
             "minimax objective run for the longest budget is the converged reference.", "",
             "| set | pairs | " + " | ".join(f"{k} steps" for k in steps)
             + " | minimax reference |", "|---|---|" + "---|" * (len(steps) + 1)]
    for name in names:
        v = conv[name]
        lines.append(f"| {name} | {v['pairs']} | " + " | ".join(_fmt(h) for h in v["median"])
                     + f" | {_fmt(v['reference'])} |")
    lines.append("")
    sentences = []
    if 100 in steps:
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
                + f" With the minimax reference: {'holds' if a['reference'] < b['reference'] else 'fails'}.")
    lines += [" ".join(sentences), ""]
    return lines


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
    sentences = []
    for kind in ("train", "test"):
        a, b = al.get(f"SGD-{kind}"), al.get(f"LBFGS-{kind}")
        if a and b:
            before = a["median_unaligned"] < b["median_unaligned"]
            after = a["median"] < b["median"]
            sentences.append(
                f"SGD < L-BFGS ({kind} sets): {'holds' if before else 'fails'} unaligned "
                f"({_fmt(a['median_unaligned'])} against {_fmt(b['median_unaligned'])}) and "
                f"{'holds' if after else 'fails'} aligned ({_fmt(a['median'])} against "
                f"{_fmt(b['median'])}): the ordering "
                + ("survives alignment." if before and after else
                   "does not survive alignment." if before else
                   "appears only after alignment." if after else "fails either way."))
    lines += [" ".join(sentences), ""]
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


def sharper(results: dict) -> dict:
    """Whether L-BFGS minima are sharper than SGD minima (largest Hessian eigenvalue on
    the training landscape), per kind of set: {kind: (held, L-BFGS median, SGD median,
    probability that an L-BFGS solution is the sharper of a random pair)}."""
    cur = results.get("curvature") or {}
    out = {}
    for kind in ("train", "test"):
        a, b = cur.get(f"LBFGS-{kind}"), cur.get(f"SGD-{kind}")
        if a and b and a.get("top") and b.get("top"):
            la, lb = np.asarray(a["top"]), np.asarray(b["top"])
            p = float(np.mean(la[:, None] > lb[None]) + 0.5 * np.mean(la[:, None] == lb[None]))
            out[kind] = (a["median_top"] > b["median_top"], a["median_top"], b["median_top"], p)
    return out


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
             "| set | solutions | median top eigenvalue | median trace (median s.e.) |",
             "|---|---|---|---|"]
    for n in SETS:
        v = cur.get(n)
        if v:
            lines.append(f"| {n} | {v['solutions']} | {_fmt(v['median_top'])} | "
                         f"{_fmt(v['median_trace'])} ({_fmt(v['median_trace_se'])}) |")
    lines.append("")
    for kind, (held, a, b, p) in sharper(results).items():
        lines.append(f"- **{'held' if held else 'did not hold'}**: L-BFGS minima are sharper "
                     f"than SGD minima ({kind} sets): median top eigenvalue L-BFGS {_fmt(a)}, "
                     f"SGD {_fmt(b)}; an L-BFGS solution is the sharper of a random pair with "
                     f"probability {p:.2f}.")
    t1 = results.get("table1")
    if t1 and sharper(results):
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
