"""Figures of the study. Each function returns a matplotlib Figure (no pyplot state,
no display needed); ``save_figure`` writes it as PNG and PDF."""

from __future__ import annotations

import io
import os
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

COLORS = {"SGD": "#1f77b4", "LBFGS": "#d62728"}


def _color(name: str) -> Optional[str]:
    for key, c in COLORS.items():
        if name.upper().startswith(key):
            return c
    return None


def _is_test(name: str) -> bool:
    """Whether ``name`` (a set, or "set@landscape") is a test-loss set."""
    return "test" in name.split("@")[0].lower()


def _style(name: str) -> dict:
    """Line style and marker of a set, so that sets are told apart by more than
    colour: a method's "-test" set dashed with squares, its "-train" set solid with
    circles."""
    test = _is_test(name)
    return dict(ls="--" if test else "-", marker="s" if test else "o")


FORMATS = ("png", "pdf")


def figure_bytes(fig: Figure, formats=FORMATS, dpi: int = 150) -> Dict[str, bytes]:
    """The figure rendered in each format: {extension: file contents}."""
    out = {}
    for ext in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
        out[ext] = buf.getvalue()
    return out


def save_figure(fig: Figure, path_stem, formats=FORMATS, dpi: int = 150) -> list:
    """Writes ``path_stem.png`` and ``path_stem.pdf``; returns the paths."""
    out = []
    d = os.path.dirname(os.fspath(path_stem))
    if d:
        os.makedirs(d, exist_ok=True)
    for ext, data in figure_bytes(fig, formats, dpi).items():
        p = f"{os.fspath(path_stem)}.{ext}"
        with open(p, "wb") as f:
            f.write(data)
        out.append(p)
    return out


def plot_loss_curves(ensembles: Dict[str, object]) -> Figure:
    """Training and test loss of a population against epoch (the paper's Fig. 2), as
    the median over its runs with bands of the 25-75% and 5-95% quantiles, and each
    run's minimum marked.

    ensembles: name -> Ensemble (e.g. {"SGD": e1, "LBFGS": e2}).
    """
    fig = Figure(figsize=(5.0 * len(ensembles), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(ensembles), squeeze=False)[0])
    for ax, (name, ens) in zip(axes, ensembles.items()):
        ep = np.arange(ens.train_loss.shape[1])
        for kind, L, best, color, ls in (
                ("train", ens.train_loss, ens.epoch_best_train, "#444444", "-"),
                ("test", ens.test_loss, ens.epoch_best_test, _color(name) or "C1", "--")):
            L = np.asarray(L, dtype=np.float64)
            if not np.isfinite(L).any():
                continue
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # epochs no run reached
                q = np.nanpercentile(L, [5, 25, 50, 75, 95], axis=0)
            ax.fill_between(ep, q[0], q[4], color=color, alpha=0.12, lw=0)
            ax.fill_between(ep, q[1], q[3], color=color, alpha=0.3, lw=0)
            ax.plot(ep, q[2], color=color, lw=1.4, ls=ls,
                    label=f"{kind}: median of {L.shape[0]} runs, 25-75% and 5-95% bands")
            rows = np.arange(L.shape[0])
            ax.plot(best, L[rows, best], "v" if kind == "train" else "o", color=color, ms=3,
                    alpha=0.7, ls="none", label=f"{kind}: each run's minimum")
        ax.set_yscale("log")
        ax.set_xlabel("epoch (SGD) / iteration (L-BFGS)")
        ax.set_ylabel("loss")
        ax.set_title(f"{name}: loss of the population")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def plot_landscape_paths(landscape, results: Dict[str, object], grid: int = 200) -> Figure:
    """A 2-D landscape with the straight line and found paths (the paper's Fig. 3).

    landscape: an AnalyticLandscape (``bounds``, ``energy``); results: label -> PathResult.
    """
    (x0, x1), (y0, y1) = landscape.bounds
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    XX, YY = np.meshgrid(xs, ys)
    Z = landscape.energy(np.stack([XX.ravel(), YY.ravel()], axis=1)).reshape(XX.shape)
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.subplots()
    cs = ax.contourf(XX, YY, Z, levels=40, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="energy")
    t = np.linspace(0, 1, 300)
    first = next(iter(results.values()), None)
    if first is not None:
        line = first.path.at(np.array([0.0, 1.0]))
        ax.plot(line[:, 0], line[:, 1], "w--", lw=1.2,
                label=f"straight (H = {first.straight_barrier:.3f})")
        ax.plot(line[:, 0], line[:, 1], "wo", ms=5)
    for i, (label, r) in enumerate(results.items()):
        W = r.path.at(t)
        H = r.barrier_refined if r.barrier_refined is not None else r.barrier
        ax.plot(W[:, 0], W[:, 1], lw=1.6, color=f"C{i + 1}", label=f"{label} (H = {H:.3f})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(getattr(landscape, "name", "landscape"))
    fig.tight_layout()
    return fig


def plot_toy_lambdas(landscape, results: Dict[float, object], grid: int = 200) -> Figure:
    """Paths found at several stretching penalties side by side (the paper's Fig. 3):
    results maps lambda -> PathResult. Each panel draws the straight line, the path
    and its M points, so that points crowding into the wells show."""
    (x0, x1), (y0, y1) = landscape.bounds
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    XX, YY = np.meshgrid(xs, ys)
    Z = landscape.energy(np.stack([XX.ravel(), YY.ravel()], axis=1)).reshape(XX.shape)
    fig = Figure(figsize=(4.2 * len(results), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(results), sharey=True))
    t = np.linspace(0, 1, 400)
    for ax, (lam, r) in zip(axes, results.items()):
        ax.contourf(XX, YY, Z, levels=40, cmap="viridis")
        line = r.path.at(np.array([0.0, 1.0]))
        ax.plot(line[:, 0], line[:, 1], "w--", lw=1.0)
        W = r.path.at(t)
        ax.plot(W[:, 0], W[:, 1], color="C1", lw=1.6)
        P = r.path.at(r.t)
        ax.plot(P[:, 0], P[:, 1], ".", color="w", ms=3)
        H = r.barrier_refined if r.barrier_refined is not None else r.barrier
        ax.set_title(f"lambda = {lam:g}: H = {H:.3f}, "
                     f"{100 * r.path.backtracking():.0f}% backwards", fontsize=9)
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    fig.tight_layout()
    return fig


def _finish(fig: Figure, ax, xlabel: str, ylabel: str, title: str) -> Figure:
    """Labels, title and legend of a single-axes figure, laid out."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_histograms(values: Dict[str, Sequence[float]], xlabel: str, title: str = "",
                    bins: int = 20, log: bool = False,
                    intervals: Optional[Dict[str, Sequence[float]]] = None) -> Figure:
    """Overlaid histograms of several sets (barriers: Fig. 4; distances: Fig. 5).
    ``intervals``: {name: (median, low, high)}, each set's median drawn as a line
    with its interval as a band (sets without one: the median alone)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    finite = [np.asarray(v, dtype=np.float64)[np.isfinite(v)] for v in values.values()]
    allv = np.concatenate([f for f in finite if f.size]) if any(f.size for f in finite) else None
    if allv is not None and allv.size:
        lo, hi = allv.min(), allv.max()
        if log and lo > 0:
            edges = np.geomspace(lo, hi * 1.0001, bins + 1)
            ax.set_xscale("log")
        else:
            edges = np.linspace(lo, hi + 1e-12 * max(1.0, abs(hi)), bins + 1)
        for i, ((name, _), v) in enumerate(zip(values.items(), finite)):
            if not v.size:
                continue
            # "-test" sets as outlines, so a method's two sets stay apart
            outline = name.endswith("-test")
            color = _color(name) or f"C{i}"
            iv = (intervals or {}).get(name)
            ok = iv is not None and all(np.isfinite(x) for x in iv[:3])
            label = (f"{name}: median {iv[0]:.3g} [{iv[1]:.3g}, {iv[2]:.3g}]" if ok
                     else f"{name} (median {np.median(v):.3g})")
            ax.hist(v, bins=edges, alpha=0.9 if outline else 0.5,
                    histtype="step" if outline else "bar", linewidth=2 if outline else None,
                    label=label, color=color)
            if intervals is not None:
                ax.axvline(iv[0] if ok else np.median(v), color=color, lw=1.2,
                           ls=_style(name)["ls"])
                if ok:
                    ax.axvspan(iv[1], iv[2], color=color, alpha=0.15, lw=0)
    if intervals is not None:
        title = (title + "; " if title else "") + "lines: medians, bands: their 95% intervals"
    return _finish(fig, ax, xlabel, "count", title)


# The three barrier levels, by their names in barrier_matrix's results.
BARRIER_LEVELS = {"barrier": "absolute barrier H = max loss (the paper's)",
                  "barrier_rel": "H - higher endpoint loss",
                  "barrier_mean": "H - mean endpoint loss"}


def plot_barrier_histograms(barriers: Dict[str, Sequence[float]], log: bool = True,
                            level: str = "barrier",
                            intervals: Optional[Dict[str, Sequence[float]]] = None) -> Figure:
    """Barrier heights per set, SGD against L-BFGS (the paper's Fig. 4), at one of the
    levels of BARRIER_LEVELS; ``intervals`` as plot_histograms."""
    if level not in BARRIER_LEVELS:
        raise ValueError(f"level: expected one of {tuple(BARRIER_LEVELS)}, got {level!r}")
    return plot_histograms(barriers, BARRIER_LEVELS[level], "barriers along found paths",
                           log=log, intervals=intervals)


def plot_distance_histograms(distances: Dict[str, Sequence[float]],
                             intervals: Optional[Dict[str, Sequence[float]]] = None) -> Figure:
    """Distances from the common centroid (the paper's Fig. 5); ``intervals`` as
    plot_histograms."""
    return plot_histograms(distances, "distance from the common centroid",
                           "spread of the solutions", intervals=intervals)


def plot_embedding(embeddings: Dict[str, np.ndarray], paths: Optional[Dict[str, np.ndarray]]
                   = None, title: str = "kernel PCA") -> Figure:
    """PC1 against PC2 of two (or more) sets; optional projected paths (Fig. 6)."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    for i, (name, E) in enumerate(embeddings.items()):
        E = np.asarray(E)
        ax.scatter(E[:, 0], E[:, 1], s=18, alpha=0.8, label=name, color=_color(name) or f"C{i}")
    for i, (name, P) in enumerate((paths or {}).items()):
        P = np.asarray(P)
        ax.plot(P[:, 0], P[:, 1], "-", lw=0.8, color="0.4", alpha=0.7,
                label=name if i == 0 else None)
    return _finish(fig, ax, "PC1", "PC2", title)


def plot_loss_profiles(profiles: Dict[str, tuple]) -> Figure:
    """Energy along paths: name -> (t (M,), losses (M,)) or a PathResult."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for i, (name, prof) in enumerate(profiles.items()):
        if hasattr(prof, "losses"):
            t, e = prof.t, prof.losses
        else:
            t, e = prof
        ax.plot(t, e, lw=1.2, color=_color(name) or f"C{i}", ls=_style(name)["ls"],
                label=name)
    return _finish(fig, ax, "t", "loss", "loss along paths")


def plot_bandwidth(sweeps: Dict[str, list], intervals: Optional[Dict[str, list]] = None
                   ) -> Figure:
    """PC1 separation (AUC) of RBF kernel PCA against the bandwidth gamma * D, one line
    per pair of sets: name -> [dict(gamma_d, auc, fisher), ...]. ``intervals``: name ->
    [dict(gamma_d, low, high, null95), ...]: each AUC's 95% interval as error bars and
    the label-permutation null's 95% point as the top of a band from 0.5."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    markers = "osD^v"
    for i, (name, rows) in enumerate(sweeps.items()):
        g = np.array([r["gamma_d"] for r in rows])
        auc = np.array([r["auc"] for r in rows])
        ls = ("-", "--", "-.", ":")[i % 4]
        ax.plot(g, auc, marker=markers[i % len(markers)], ls=ls, lw=1.2, color=f"C{i}",
                label=name)
        iv = (intervals or {}).get(name)
        if iv:
            lo, hi = np.array([r["low"] for r in iv]), np.array([r["high"] for r in iv])
            ax.errorbar(g, auc, yerr=[np.maximum(auc - lo, 0), np.maximum(hi - auc, 0)],
                        fmt="none", ecolor=f"C{i}", elinewidth=0.9, capsize=2)
            ax.fill_between(g, 0.5, [r["null95"] for r in iv], color=f"C{i}", alpha=0.1,
                            lw=0, label=f"{name}: 95% of random labellings")
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_ylim(0.45, 1.02)
    return _finish(fig, ax, "gamma * D (1: the paper's 2 sigma^2 = D)",
                   "PC1 AUC (1: separated, 0.5: mixed)", "kernel PCA against the RBF bandwidth"
                   + ("; bars: 95% intervals" if intervals else ""))


def plot_convergence(sets: Dict[str, dict]) -> Figure:
    """Median refined barrier against the number of path steps, one line per set,
    with its minimax reference dotted and the certify stage's refined barrier of the
    same pairs as a marker at the right (where given): name -> dict(steps, median,
    reference, refined=None)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    steps = []
    refs = []
    for name, v in sets.items():
        color, test = _color(name), _is_test(name)
        ax.plot(v["steps"], v["median"], lw=1.2, color=color, label=name, **_style(name))
        if v.get("reference") is not None and np.isfinite(v["reference"]):
            ax.axhline(v["reference"], color=color, lw=0.9, ls=(0, (1, 3)) if test else ":")
            refs.append("dotted: minimax reference")
        if v.get("refined") is not None and np.isfinite(v["refined"]):
            ax.plot([2 * v["steps"][-1]], [v["refined"]], marker="*", ms=9, color=color,
                    ls="none")
            refs.append("stars: refined (certify stage)")
        steps = v["steps"]
    if any("stars" in r for r in refs):
        ax.set_yscale("log")
    ax.axvline(100, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(steps)
    ax.set_xticklabels([str(k) for k in steps])
    ax.minorticks_off()
    note = "; ".join(dict.fromkeys(refs))
    return _finish(fig, ax, "Adam steps (grey: the paper's 100)",
                   "median barrier H" + (f" ({note})" if note else ""), "path convergence")


def plot_spectral_density(densities: Dict[str, object]) -> Figure:
    """Hessian eigenvalue densities (stochastic Lanczos quadrature), log scale, one line
    per name: name -> curvature.SpectralDensity."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for i, (name, d) in enumerate(densities.items()):
        ax.semilogy(d.grid, np.maximum(d.density, 1e-12), lw=1.2, color=_color(name) or f"C{i}",
                    label=name)
    ax.set_ylim(bottom=max(1e-8, min(float(np.max(d.density)) for d in densities.values())
                       * 1e-7))
    return _finish(fig, ax, "eigenvalue", "density", "Hessian spectral density")


def _mark(ax, marks: dict) -> None:
    for name, xy in marks.items():
        ax.plot(*xy, "o", ms=5, mec="k", mfc="w")
        ax.annotate(name, xy, textcoords="offset points", xytext=(4, 4), fontsize=7)


def plot_slice(sl, title: str = "") -> Figure:
    """A slices.Slice: loss (and accuracy) against x for 1-D; for 2-D, contours of
    log10 loss with the marked points (and accuracy contours beside)."""
    if sl.ys is None:
        fig = Figure(figsize=(5.5, 3.8))
        ax = fig.subplots()
        ax.semilogy(sl.xs, sl.loss, color="C0", label="loss")
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        if sl.accuracy is not None:
            ax2 = ax.twinx()
            ax2.plot(sl.xs, sl.accuracy, color="C1", lw=1.0, label="accuracy")
            ax2.set_ylabel("accuracy")
        return _finish(fig, ax, "x", "loss", title or f"1-D slice ({sl.kind})")
    panels = 2 if sl.accuracy is not None else 1
    fig = Figure(figsize=(4.8 * panels, 4.2))
    axes = np.atleast_1d(fig.subplots(1, panels, squeeze=False)[0])
    X, Y = np.meshgrid(sl.xs, sl.ys)
    cs = axes[0].contourf(X, Y, np.log10(np.maximum(sl.loss, 1e-12)), levels=30, cmap="viridis")
    fig.colorbar(cs, ax=axes[0], label="log10 loss")
    axes[0].set_title(title or f"2-D slice ({sl.kind}): loss")
    if panels == 2:
        ca = axes[1].contourf(X, Y, sl.accuracy, levels=20, cmap="magma")
        fig.colorbar(ca, ax=axes[1], label="accuracy")
        axes[1].set_title("accuracy")
    for ax in axes:
        _mark(ax, sl.marks)
        ax.set_xlabel("x (d1)")
        ax.set_ylabel("y (d2)")
    fig.tight_layout()
    return fig


def plot_slice_surface(sl, title: str = "") -> Figure:
    """A 2-D slices.Slice as a surface of log10 loss."""
    if sl.ys is None:
        raise ValueError("plot_slice_surface: needs a 2-D slice")
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(projection="3d")
    X, Y = np.meshgrid(sl.xs, sl.ys)
    ax.plot_surface(X, Y, np.log10(np.maximum(sl.loss, 1e-12)), cmap="viridis", linewidth=0,
                    antialiased=True)
    ax.set_xlabel("x (d1)")
    ax.set_ylabel("y (d2)")
    ax.set_zlabel("log10 loss")
    ax.set_title(title or f"2-D slice ({sl.kind})")
    return fig


def disconnectivity_layout(network) -> dict:
    """The drawing of a disconnectivity graph as data: ``x`` and ``y`` of every leaf
    (y its loss) and merge (y its join level; merges of components no measured path
    joins sit at ``top``), ``segments`` [(x0, y0, x1, y1, joined)], and ``log`` (the
    levels span more than two decades and are positive)."""
    from scipy.cluster.hierarchy import leaves_list

    n = network.n
    losses = network.losses
    if n < 2:
        return dict(x=np.zeros(1), y=losses.copy(), segments=[], top=float(losses[0]),
                    log=False, unjoined=0)
    Z, ceiling = network.linkage()
    levels = np.concatenate([losses, Z[:, 2]])
    known = levels[levels < ceiling]
    log = bool(known.min() > 0 and known.max() / known.min() > 100)
    hi = known.max()
    top = hi * 3 if log else hi + 0.15 * max(hi - known.min(), abs(hi), 1e-12)
    x = np.zeros(2 * n - 1)
    x[leaves_list(np.column_stack([Z[:, :2], Z[:, 2] - Z[:, 2].min(), Z[:, 3]]))] = (
        np.arange(n))
    y = levels.copy()
    y[n:][Z[:, 2] >= ceiling] = top
    segments = []
    for t, (a, b, _, _) in enumerate(Z):
        node = n + t
        a, b = int(a), int(b)
        x[node] = 0.5 * (x[a] + x[b])
        joined = bool(Z[t, 2] < ceiling)
        for c in (a, b):
            segments.append((x[c], y[c], x[c], y[node], joined))
        segments.append((x[a], y[node], x[b], y[node], joined))
    return dict(x=x, y=y, segments=segments, top=float(top), log=log,
                unjoined=int((Z[:, 2] >= ceiling).sum()))


def plot_disconnectivity(networks, title: str = "disconnectivity graph") -> Figure:
    """Disconnectivity graph(s): every minimum a leaf at its own loss, basins merging
    at the barrier that joins them (solid), components no measured path joins meeting
    dotted at the top. ``networks``: a MinimaNetwork or {panel title: network} (e.g.
    raw and aligned side by side). Leaves are coloured and marked by set."""
    if not isinstance(networks, dict):
        networks = {title: networks}
    fig = Figure(figsize=(5.5 * len(networks), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(networks), squeeze=False)[0])
    for ax, (name, net) in zip(axes, networks.items()):
        lay = disconnectivity_layout(net)
        for x0, y0, x1, y1, joined in lay["segments"]:
            ax.plot([x0, x1], [y0, y1], color="0.25" if joined else "0.6",
                    lw=0.8, ls="-" if joined else ":")
        for label in sorted(set(net.labels)):
            idx = np.flatnonzero(net.labels == label)
            ax.plot(lay["x"][idx], lay["y"][idx], ls="none", ms=4, color=_color(label),
                    marker=_style(label)["marker"] if _color(label) else "D",
                    label=label or "minima")
        if lay["log"]:
            ax.set_yscale("log")
        ax.set_xticks([])
        ax.set_title(name + (f" ({lay['unjoined']} joins unmeasured)" if lay["unjoined"]
                             else ""))
        ax.set_ylabel("loss (leaves) / barrier H (joins)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
