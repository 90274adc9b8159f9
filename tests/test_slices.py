"""1-D and 2-D slices against direct evaluation of every point; filter normalization
against a direct NumPy construction; the plane through three solutions."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape, plots
from losstopo.slices import filter_normalized, slice1d, slice2d


def setup(dtype="float64", bias=True, loss="cross_entropy"):
    net = MLP([7, 6, 5, 3], activation="tanh", bias=bias, loss=loss)
    X, y = losstopo.datasets.synthetic(120, 7, 3, seed=0, dtype=dtype)
    if loss == "mse":
        y = np.random.default_rng(0).normal(size=(120, 3))
    ls = Landscape(net, X, y, dtype=dtype)
    theta = net.init(1, seed=2, dtype="float64")[0]
    return net, ls, theta


def grid_points(sl):
    X, Y = np.meshgrid(sl.xs, sl.ys)
    return (sl.theta + X[..., None] * sl.directions[0] + Y[..., None] * sl.directions[1]
            ).reshape(-1, sl.theta.size)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("directions", ["filter", "random"])
def test_2d_slice_equals_direct_evaluation(dtype, directions):
    net, ls, theta = setup(dtype)
    sl = slice2d(ls, theta, directions, n=9, span=0.7, chunk=20)
    assert sl.loss.shape == (9, 9) and sl.accuracy.shape == (9, 9)
    pts = grid_points(sl)
    rtol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(sl.loss.reshape(-1), ls.loss(pts), rtol=rtol)
    acc = ls.accuracy(pts)
    # float32 points formed in another order may flip one borderline sample
    tol = 1.5 / 120 if dtype == "float32" else 0
    assert np.abs(sl.accuracy.reshape(-1) - acc).max() <= tol
    # The centre is theta itself.
    np.testing.assert_allclose(sl.loss[4, 4], ls.loss(theta), rtol=rtol)


def test_1d_slice_and_given_directions():
    net, ls, theta = setup()
    d = np.random.default_rng(0).normal(size=net.num_params)
    sl = slice1d(ls, theta, d, n=11, span=(-0.5, 2.0))
    np.testing.assert_allclose(sl.xs, np.linspace(-0.5, 2.0, 11))
    np.testing.assert_allclose(sl.loss, ls.loss(theta + sl.xs[:, None] * d), rtol=1e-12)
    d2 = np.random.default_rng(1).normal(size=net.num_params)
    s2 = slice2d(ls, theta, (d, d2), n=5, span=(0, 1, -1, 0))
    np.testing.assert_allclose(s2.loss.reshape(-1), ls.loss(grid_points(s2)), rtol=1e-12)


def test_regression_network_has_no_accuracy():
    net, ls, theta = setup(loss="mse")
    sl = slice2d(ls, theta, n=4)
    assert sl.accuracy is None
    np.testing.assert_allclose(sl.loss.reshape(-1), ls.loss(grid_points(sl)), rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_filter_normalization(bias):
    net = MLP([7, 6, 5, 3], bias=bias)
    theta = net.init(1, seed=0, dtype="float64")[0]
    d = filter_normalized(net, theta, seed=3)
    layers_t, layers_d = net.unflatten(theta), net.unflatten(d)
    for (W, b), (Wd, bd) in zip(layers_t, layers_d):
        np.testing.assert_allclose(np.linalg.norm(Wd, axis=1), np.linalg.norm(W, axis=1),
                                   rtol=1e-12)
        if bias:
            assert np.all(bd == 0)
    # Direct construction: the same Gaussian draw, row by row.
    rng = np.random.default_rng(3)
    for (W, _), (Wd, _) in zip(layers_t, layers_d):
        R = rng.standard_normal(W.shape)
        expect = R / np.linalg.norm(R, axis=1, keepdims=True) * np.linalg.norm(W, axis=1,
                                                                                keepdims=True)
        np.testing.assert_allclose(Wd, expect, rtol=1e-12)


def test_plane_through_three_solutions_passes_through_them():
    net, ls, _ = setup()
    sols = net.init(3, seed=5, dtype="float64")
    sl = slice2d(ls, None, "plane", n=5, solutions=sols)
    D = sl.directions
    for i, (x, y) in enumerate(sl.marks.values()):
        np.testing.assert_allclose(sl.theta + x * D[0] + y * D[1], sols[i], atol=1e-12)
    assert abs(D[0] @ D[1]) < 1e-10 * np.linalg.norm(D[0]) * np.linalg.norm(D[1])


def test_pca_directions_keep_the_solutions_in_the_square():
    net, ls, theta = setup()
    sols = net.init(8, seed=6, dtype="float64")
    sl = slice2d(ls, sols.mean(axis=0), "pca", n=4, solutions=sols)
    coords = np.array([xy for k, xy in sl.marks.items() if k.startswith("solution")])
    assert coords.shape == (8, 2) and np.abs(coords).max() <= 1 + 1e-12
    assert np.isclose(np.abs(coords[:, 0]).max(), 1.0)


def test_figures_are_drawn():
    net, ls, theta = setup()
    s2 = slice2d(ls, theta, n=5)
    s1 = slice1d(ls, theta, n=5)
    for fig in (plots.plot_slice(s2), plots.plot_slice(s1), plots.plot_slice_surface(s2)):
        assert len(plots.figure_bytes(fig, formats=("png",))["png"]) > 1000
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_slice_surface(s1)


def test_bad_input_is_named():
    net, ls, theta = setup()
    with pytest.raises(ValueError, match="theta"):
        slice2d(ls, theta[:5])
    with pytest.raises(ValueError, match="directions"):
        slice2d(ls, theta, "sideways")
    with pytest.raises(ValueError, match="three solutions"):
        slice2d(ls, theta, "plane", solutions=net.init(2, seed=0))
    with pytest.raises(ValueError, match="directions"):
        slice2d(ls, theta, (np.zeros(net.num_params), np.ones(net.num_params)))
    with pytest.raises(ValueError, match="span"):
        slice1d(ls, theta, span=-1.0)
    with pytest.raises(ValueError, match="pca"):
        slice2d(ls, theta, "pca", solutions=net.init(2, seed=0))
