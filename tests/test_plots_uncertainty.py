"""The figures show the uncertainty: barrier histograms with each median's interval,
the bandwidth sweep with its intervals and null band, the populations' loss curves as
median and quantile bands, and sets told apart by more than colour. Read back from
the artists' data."""

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

import losstopo
from losstopo import plots


def test_barrier_histograms_draw_each_median_and_its_interval():
    iv = {"SGD-train": [0.2, 0.15, 0.25], "LBFGS-train": [0.7, 0.5, 0.9]}
    fig = plots.plot_barrier_histograms({"SGD-train": [0.1, 0.2, 0.3],
                                         "LBFGS-train": [0.5, 0.7, 0.9]}, log=False,
                                        intervals=iv)
    ax = fig.axes[0]
    medians = sorted(ln.get_xdata()[0] for ln in ax.get_lines())
    assert medians == [0.2, 0.7]
    bands = sorted((p.get_x(), p.get_x() + p.get_width()) for p in ax.patches
                   if isinstance(p, Rectangle) and p.get_height() == 1 and p.get_alpha() == 0.15)
    assert bands == [(0.15, 0.25), (0.5, 0.9)]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "SGD-train: median 0.2 [0.15, 0.25]" in labels
    assert "95% intervals" in ax.get_title()


def test_the_bandwidth_sweep_draws_its_intervals_and_null_band():
    rows = [dict(gamma_d=g, auc=a, fisher=1.0) for g, a in ((1.0, 0.6), (10.0, 0.95))]
    iv = [dict(gamma_d=1.0, low=0.5, high=0.7, null95=0.62),
          dict(gamma_d=10.0, low=0.9, high=1.0, null95=0.64)]
    fig = plots.plot_bandwidth({"a + b": rows}, {"a + b": iv})
    ax = fig.axes[0]
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1
    top = band[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(top.max(), 0.64) and np.isclose(top.min(), 0.5)
    bars = [c for c in ax.collections if not isinstance(c, PolyCollection)]
    segs = bars[0].get_segments()
    assert [tuple(np.round(s[:, 1], 6)) for s in segs] == [(0.5, 0.7), (0.9, 1.0)]


def test_loss_curves_are_the_median_and_quantile_bands_of_every_run():
    X, y = losstopo.datasets.synthetic(60, 6, 3, seed=0)
    ens = losstopo.train(losstopo.MLP([6, 4, 3]), (X, y), (X, y), runs=5, epochs=4,
                         progress=False)
    fig = plots.plot_loss_curves({"SGD": ens})
    ax = fig.axes[0]
    lines = {ln.get_label().split(":")[0]: ln for ln in ax.get_lines()
             if "median" in ln.get_label()}
    assert np.allclose(lines["train"].get_ydata(), np.median(ens.train_loss, axis=0))
    assert np.allclose(lines["test"].get_ydata(), np.median(ens.test_loss, axis=0))
    assert lines["train"].get_linestyle() != lines["test"].get_linestyle()
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # two bands each for train and test
    lo = bands[0].get_paths()[0].vertices[:, 1].min()
    assert np.isclose(lo, np.percentile(ens.train_loss, 5, axis=0).min())


def test_sets_of_one_colour_differ_in_line_style():
    t = np.linspace(0, 1, 5)
    fig = plots.plot_loss_profiles({"SGD-train": (t, t), "SGD-test": (t, 2 * t)})
    a, b = fig.axes[0].get_lines()
    assert a.get_color() == b.get_color() and a.get_linestyle() != b.get_linestyle()
