"""Stochastic path steps (find_path(batch_size=B)): each step's objective on B samples,
the reported numbers on all of them."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, FourierPath, Landscape, barrier_matrix, find_path
from losstopo._native import core


def _setup(bias=True, n=120, seed=0):
    net = MLP([7, 6, 4, 3], activation="softplus", bias=bias)
    X, y = losstopo.datasets.synthetic(n, 7, 3, seed=seed, dtype="float64")
    return net, X, y, Landscape(net, X, y, dtype="float64", chunk=25)


@pytest.mark.parametrize("objective", ["sum", "sum_squares", "minimax"])
@pytest.mark.parametrize("generic", [False, True])
def test_objective_on_samples_is_the_objective_of_those_samples(objective, generic):
    """On a sample subset the path objective (value, gradient, energies, endpoints
    included) equals the full objective of a landscape holding only those samples."""
    net, X, y, ls = _setup()
    rng = np.random.default_rng(1)
    th = net.init(4, seed=5, dtype="float64")
    samples = np.sort(rng.choice(len(X), 37, replace=False)).astype(np.int64)
    sub = Landscape(net, X[samples], y[samples], dtype="float64")
    params = core.PathParams(n_modes=3, n_points=11, lam=0.2, objective=objective,
                             temperature=0.1)
    pb = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
    ref = core.PathBatchF64(sub.engine, th[:2], th[2:], params)
    if generic:
        pb.use_generic_evaluation()
    C = 0.2 * rng.standard_normal((2, 3, net.num_params))
    v1, g1, e1 = pb.objective(C, samples=samples)
    v2, g2, e2 = ref.objective(C)
    np.testing.assert_allclose(e1, e2, rtol=1e-12)
    np.testing.assert_allclose(v1, v2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-13)
    # and the full-data objective is a different number
    assert not np.allclose(pb.objective(C, grad=False)[0], v1, rtol=1e-6)
    # the gradient on samples against finite differences
    d = rng.standard_normal(C.shape)
    h = 1e-6
    fp = pb.objective(C + h * d, grad=False, samples=samples)[0]
    fm = pb.objective(C - h * d, grad=False, samples=samples)[0]
    np.testing.assert_allclose(np.sum(g1 * d, axis=(1, 2)), (fp - fm) / (2 * h), rtol=1e-5,
                               atol=1e-8)


def test_step_samples_are_a_pure_function_of_seed_and_step():
    net, X, y, ls = _setup()
    th = net.init(2, seed=1, dtype="float64")

    def batch(seed):
        return core.PathBatchF64(ls.engine, th[:1], th[1:],
                                 core.PathParams(batch_size=30, batch_seed=seed))

    s0 = batch(7).step_samples(0)
    assert s0.shape == (30,) and s0.dtype == np.int64
    assert np.all(np.diff(s0) > 0) and s0.min() >= 0 and s0.max() < len(X)  # sorted, distinct
    np.testing.assert_array_equal(s0, batch(7).step_samples(0))
    assert not np.array_equal(s0, batch(7).step_samples(1))
    assert not np.array_equal(s0, batch(8).step_samples(0))
    # over many steps every sample is drawn about equally often
    counts = np.bincount(np.concatenate([batch(7).step_samples(s) for s in range(400)]),
                         minlength=len(X))
    expected = 400 * 30 / len(X)
    assert counts.min() > 0.5 * expected and counts.max() < 1.5 * expected


def test_stochastic_path_reports_full_data_numbers():
    net, X, y, ls = _setup(n=200)
    a, b = net.init(2, seed=4, dtype="float64")
    kw = dict(n_modes=3, n_points=12, lam=1e-3, lr=0.02, steps=40, progress=False)
    full = find_path(ls, a, b, **kw)
    sto = find_path(ls, a, b, batch_size=50, seed=3, **kw)
    # the path is the last iterate, measured on all samples
    path = FourierPath(a, b, sto.path.coeffs)
    np.testing.assert_allclose(sto.losses, ls.loss(path.at(sto.t)), rtol=1e-12)
    assert sto.settings["batch_size"] == 50 and sto.settings["seed"] == 3
    # it learned: the summed energy along the path fell below the straight line's
    assert sto.losses.sum() < sto.straight["losses"].sum() - 0.01
    assert not np.array_equal(sto.path.coeffs, full.path.coeffs)
    # reproducible, and another seed draws other samples
    again = find_path(ls, a, b, batch_size=50, seed=3, **kw)
    np.testing.assert_array_equal(again.path.coeffs, sto.path.coeffs)
    other = find_path(ls, a, b, batch_size=50, seed=4, **kw)
    assert not np.array_equal(other.path.coeffs, sto.path.coeffs)
    # the last entry of the history is the full-data objective of the returned path
    pb = core.PathBatchF64(ls.engine, a[None], b[None],
                           core.PathParams(n_modes=3, n_points=12, lam=1e-3))
    assert sto.history[-1] == pytest.approx(pb.objective(sto.path.coeffs[None],
                                                         grad=False)[0][0], rel=1e-12)


def test_stochastic_pairs_batched_equal_single_paths():
    net, X, y, ls = _setup(n=150)
    thetas = net.init(4, seed=2, dtype="float64")
    kw = dict(pairs=4, seed=1, n_points=9, n_modes=3, steps=8, lr=0.01, batch_size=40,
              progress=False)
    one = barrier_matrix(ls, thetas, chunk=1, **kw)
    many = barrier_matrix(ls, thetas, chunk=4, **kw)
    for key in ("barrier", "barrier_refined", "length", "losses"):
        np.testing.assert_array_equal(many[key], one[key])
    i1, i2 = many["pairs"][2]
    fp = {k: v for k, v in kw.items() if k != "pairs"}
    assert find_path(ls, thetas[i1], thetas[i2], **fp).barrier == many["barrier"][2]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=-5), ValueError, "batch_size"),
        (dict(batch_size=2.5), ValueError, "batch_size"),
        (dict(batch_size=10_000), ValueError, "batch_size.*120"),
        (dict(batch_size=20, optimizer="lbfgs"), ValueError, "batch_size.*adam"),
    ],
)
def test_bad_batch_size(kwargs, exc, match):
    net, X, y, ls = _setup()
    a, b = net.init(2, seed=4, dtype="float64")
    with pytest.raises(exc, match=match):
        find_path(ls, a, b, steps=2, progress=False, **kwargs)


def test_batch_size_needs_a_landscape():
    def energy(W):
        return (W ** 2).sum(1), 2 * W

    with pytest.raises(ValueError, match="batch_size.*Landscape"):
        find_path(energy, np.zeros(3), np.ones(3), steps=2, batch_size=5, progress=False)
