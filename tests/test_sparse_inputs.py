"""The first layer's products from the inputs' nonzeros (input_products="sparse")
against the dense products and the independent float64 NumPy reference."""

import pickle

import numpy as np
import pytest

from losstopo import MLP, Landscape
from losstopo._native import core

import reference

SIMD_MODES = ["scalar", "avx2", "avx512"]  # a level the CPU lacks runs a narrower one


def sparse_data(n, d0, density, seed, classes=3):
    """Inputs with exact zeros at about `density`, and the awkward cases: a column zero
    in every sample, a column nonzero in one sample only, rows all zero."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, d0)) * (rng.random((n, d0)) < density)
    X[:, 1] = 0.0
    X[:, 4] = 0.0
    X[n // 3, 4] = 0.75
    X[[0, 5, n - 1]] = 0.0
    return X, rng.integers(0, classes, n)


def check_reference(net, theta, X, y, loss, grad):
    for p in range(len(theta)):
        rl, rg = reference.loss_and_grad(net, theta[p], X, y)
        assert loss[p] == pytest.approx(rl, rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(grad[p], rg, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("mode", SIMD_MODES)
@pytest.mark.parametrize("density", [0.02, 0.1, 0.3, 0.7])
def test_sparse_float64_matches_reference(density, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    net = MLP([29, 13, 6, 3], activation="tanh", bias=True)
    X, y = sparse_data(103, 29, density, seed=int(density * 100))
    theta = net.init(5, seed=2, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64", input_products="sparse")
    assert ls.sparse_inputs
    loss, grad = ls.loss_and_grad(theta)
    check_reference(net, theta, X, y, loss, grad)
    dense = Landscape(net, X, y, dtype="float64", input_products="dense")
    assert not dense.sparse_inputs
    dl, dg = dense.loss_and_grad(theta)
    np.testing.assert_allclose(loss, dl, rtol=1e-13)
    np.testing.assert_allclose(grad, dg, rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("mode", SIMD_MODES)
@pytest.mark.parametrize("P", [1, 3, 9])
def test_sparse_float32_close_to_dense(P, mode, monkeypatch):
    # h1 = 120: P = 9 makes the weight gradient 1080 columns wide, where it is formed
    # from the inputs' columns too (transposed); P = 1 and 3 keep the dense product
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    net = MLP([37, 120, 10], activation="relu", bias=True)
    X, y = sparse_data(301, 37, 0.15, seed=P, classes=10)
    theta = net.init(P, seed=P)
    sp = Landscape(net, X, y, input_products="sparse")
    de = Landscape(net, X, y, input_products="dense")
    (sl, sg), (dl, dg) = sp.loss_and_grad(theta), de.loss_and_grad(theta)
    np.testing.assert_allclose(sl, dl, rtol=2e-6)
    np.testing.assert_allclose(sg, dg, rtol=0, atol=2e-6 * np.abs(dg).max())
    np.testing.assert_array_equal(sp.accuracy(theta), de.accuracy(theta))
    ref = [reference.loss_and_grad(net, t.astype(np.float64), X, y) for t in theta]
    np.testing.assert_allclose(sl, [r[0] for r in ref], rtol=1e-5)


@pytest.mark.parametrize("chunk", [None, 16, 37])
def test_sparse_independent_of_chunking(chunk):
    # chunks off the held panels' groups of four rows (37) make their own panels
    net = MLP([21, 30, 4], activation="sigmoid", bias=False)
    X, y = sparse_data(157, 21, 0.2, seed=3, classes=4)
    theta = net.init(40, seed=1, dtype="float64")  # 40 x 30: the transposed gradient
    ls = Landscape(net, X, y, dtype="float64", chunk=chunk, input_products="sparse")
    loss, grad = ls.loss_and_grad(theta)
    check_reference(net, theta[:3], X, y, loss[:3], grad[:3])
    check_reference(net, theta[-2:], X, y, loss[-2:], grad[-2:])


@pytest.mark.parametrize("h1, P", [(9, 3), (120, 9)])
def test_sparse_sample_subsets(h1, P):
    # subsets whose zero columns differ from the whole dataset's; repeated indices.
    # A sample list makes its own panels per chunk, which pays only for wide products
    # (9 x 120 columns: forward and gradient sparse; 3 x 9: dense)
    net = MLP([17, h1, 3], activation="tanh", bias=True)
    X, y = sparse_data(90, 17, 0.2, seed=5)
    X[:45, 7] = 0.0  # column 7 nonzero only in the second half
    ls = Landscape(net, X, y, dtype="float64", input_products="sparse")
    theta = net.init(P, seed=6, dtype="float64")
    for samples in (np.arange(10, 40), np.array([89, 3, 3, 50, 0, 44, 45]), np.arange(90)):
        loss, grad = ls.loss_and_grad(theta, samples=samples)
        check_reference(net, theta[:3], X[samples], y[samples], loss[:3], grad[:3])


def test_automatic_choice_is_reported():
    from losstopo.landscape import input_densities

    net = MLP([40, 8, 3])
    rng = np.random.default_rng(0)
    below = core.SPARSE_INPUTS_BELOW
    assert 0.0 < below < 1.0
    sparse_X, y = sparse_data(66, 40, 0.05, seed=1)  # 66: a last group of two rows
    ls = Landscape(net, sparse_X, y)
    assert ls.input_products == "auto"
    density, panel = input_densities(sparse_X)  # the NumPy count
    assert ls.input_density == pytest.approx(density, rel=1e-12)
    assert ls.input_density == pytest.approx(np.count_nonzero(sparse_X) / sparse_X.size)
    assert ls.panel_density == pytest.approx(panel, rel=1e-12)
    assert density < panel < below and ls.sparse_inputs
    # independent zeros at 19% (MNIST's density): the groups of four rows read about
    # 1 - 0.81^4 = 57% of the inputs, past the crossover, so the products stay dense
    scattered = rng.random((400, 40)) * (rng.random((400, 40)) < 0.19)
    sc = Landscape(net, scattered, rng.integers(0, 3, 400))
    assert sc.input_density < 0.25 and sc.panel_density > below and not sc.sparse_inputs
    dense_X = rng.random((66, 40)) + 0.1  # no zeros: random data stay dense
    dense = Landscape(net, dense_X, y)
    assert dense.input_density == 1.0 and dense.panel_density == 1.0
    assert not dense.sparse_inputs
    dense.input_products = "sparse"  # forced either way, after construction too
    assert dense.sparse_inputs and dense.input_products == "sparse"
    ls.input_products = "dense"
    assert not ls.sparse_inputs


def test_forcing_either_way_agrees_and_threads_are_deterministic():
    net = MLP([33, 64, 16, 5], activation="softplus", bias=True)
    X, y = sparse_data(401, 33, 0.12, seed=9, classes=5)
    theta = net.init(20, seed=3)  # 20 x 64 columns: the transposed gradient
    runs = {}
    for threads in (1, 2, 3):
        ls = Landscape(net, X, y, threads=threads, input_products="sparse")
        first = ls.loss_and_grad(theta)
        again = ls.loss_and_grad(theta)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)  # bitwise, for a given thread count
        runs[threads] = first
    dense = Landscape(net, X, y, input_products="dense").loss_and_grad(theta)
    for loss, grad in runs.values():
        np.testing.assert_allclose(loss, dense[0], rtol=2e-6)
        np.testing.assert_allclose(grad, dense[1], rtol=0, atol=3e-6 * np.abs(dense[1]).max())


@pytest.mark.parametrize("h1", [7, 260])
def test_sparse_combinations_and_path_gradient(h1):
    # combinations (with and without held basis products) and the path objective's
    # projected gradient, K h1 columns wide (260: past the transposed gradient's width)
    net = MLP([23, h1, 3], activation="tanh", bias=True)
    X, y = sparse_data(120, 23, 0.15, seed=h1)
    sp = Landscape(net, X, y, dtype="float64", chunk=50, input_products="sparse")
    de = Landscape(net, X, y, dtype="float64", chunk=50, input_products="dense")
    rng = np.random.default_rng(h1)
    V = net.init(5, seed=4, dtype="float64")
    index = rng.integers(0, 5, (6, 3)).astype(np.int32)
    coef = rng.standard_normal((6, 3))
    points = np.einsum("pk,pkd->pd", coef, V[index])
    got = sp.engine.evaluate_combination(V, index, coef)
    for p in range(len(points)):
        assert got[p] == pytest.approx(reference.loss_and_grad(net, points[p], X, y)[0],
                                       rel=1e-12)
    sp.engine.hold_basis(V[:2])
    try:
        held = sp.engine.evaluate_combination(V, index, coef)
    finally:
        sp.engine.release_basis(V[:2])
    np.testing.assert_allclose(held, got, rtol=1e-13)
    th = net.init(4, seed=5, dtype="float64")
    params = core.PathParams(n_modes=4, n_points=13, lam=0.1)
    C = 0.3 * rng.standard_normal((2, 4, net.num_params))
    v1, g1, e1 = core.PathBatchF64(sp.engine, th[:2], th[2:], params).objective(C)
    v2, g2, e2 = core.PathBatchF64(de.engine, th[:2], th[2:], params).objective(C)
    np.testing.assert_allclose(e1, e2, rtol=1e-12)
    np.testing.assert_allclose(v1, v2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-13)


def test_other_consumers_on_a_sparse_landscape():
    # prepared lines and Hessian-vector products (sparse too), and per-vector
    # minibatches (dense) on a sparse landscape: the same numbers as on the dense one;
    # 600 samples: chunks of whole 256-row blocks and a partial last one
    net = MLP([19, 11, 3], activation="softplus", bias=True)
    X, y = sparse_data(600, 19, 0.1, seed=8)
    sp = Landscape(net, X, y, dtype="float64", input_products="sparse", threads=2)
    de = Landscape(net, X, y, dtype="float64", input_products="dense", threads=2)
    th = net.init(3, seed=1, dtype="float64")
    d = net.init(3, seed=2, dtype="float64") - th
    lines, u = np.array([0, 2, 1]), np.array([0.2, -0.4, 1.0])
    for a, b in zip(sp.engine.line_values(th, d, lines, u, grad=True),
                    de.engine.line_values(th, d, lines, u, grad=True)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    for t in (th[:1], th):  # one point (kept between calls) and a point per direction
        for grad in (False, True):
            a = sp.engine.hessian_vector(t, d, grad=grad)
            b = de.engine.hessian_vector(t, d, grad=grad)
            again = sp.engine.hessian_vector(t, d, grad=grad)
            for x, z, w in zip(a, b, again):
                if z is None:
                    continue
                np.testing.assert_allclose(x, z, rtol=1e-11, atol=1e-14)
                assert np.array_equal(x, w)
    # against central differences of the reference gradient
    hv = sp.hessian_vector(th[0], d[0])
    h = 1e-5
    fd = (reference.loss_and_grad(net, th[0] + h * d[0], X, y)[1]
          - reference.loss_and_grad(net, th[0] - h * d[0], X, y)[1]) / (2 * h)
    np.testing.assert_allclose(np.ravel(hv), fd, rtol=1e-5, atol=1e-8)
    samples = np.random.default_rng(0).integers(0, 600, (3, 10))
    for a, b in zip(sp.evaluate_each(th, samples), de.evaluate_each(th, samples)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_bad_setting_and_pickle():
    net = MLP([10, 4, 3])
    X, y = sparse_data(20, 10, 0.2, seed=0)
    with pytest.raises(ValueError, match="input_products"):
        Landscape(net, X, y, input_products="csr")
    ls = Landscape(net, X, y, input_products="sparse")
    for bad in ("fast", None, 3):
        with pytest.raises(ValueError, match="input_products"):
            ls.input_products = bad
    with pytest.raises(ValueError, match="input_products"):
        ls.engine.input_products = "fast"  # the engine itself names it too
    assert ls.input_products == "sparse"
    back = pickle.loads(pickle.dumps(ls))
    assert back.input_products == "sparse" and back.sparse_inputs
    theta = net.init(2, seed=0)
    for a, b in zip(back.loss_and_grad(theta), ls.loss_and_grad(theta)):
        assert np.array_equal(a, b)


def test_minimize_on_sparse_inputs():
    # L-BFGS-GSS carries the first-layer products of its lines from step to step (the
    # fresh ones from the inputs' nonzeros here): the same iterates as the dense engine
    from losstopo import minimize

    net = MLP([31, 12, 3], activation="tanh", bias=True)
    X, y = sparse_data(150, 31, 0.15, seed=4)
    theta0 = net.init(1, seed=3, dtype="float64")[0]
    runs = [minimize(Landscape(net, X, y, dtype="float64", input_products=how), theta0,
                     max_iter=15, gtol=0.0) for how in ("sparse", "dense")]
    assert runs[0].nit == runs[1].nit
    np.testing.assert_allclose(runs[0].x, runs[1].x, rtol=1e-8, atol=1e-10)
    assert runs[0].fun == pytest.approx(runs[1].fun, rel=1e-10)
