"""Input columns zero in every sample, left out of the first layer
(drop_zero_columns): every consumer of the engine against the engine that reads them
and against the independent float64 NumPy reference."""

import pickle

import numpy as np
import pytest

from losstopo import MLP, Landscape, minimize
from losstopo._native import core

import reference


def zero_column_data(n, d0, seed, classes=3, density=1.0):
    """Inputs with zero columns at the edges and in runs inside, a column nonzero in
    one sample only and a column of -0.0 (kept: it is not +0.0)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d0)) * (rng.random((n, d0)) < density)
    zero = [0, 1, 4, 5, 6, d0 - 1]
    X[:, zero] = 0.0
    X[n // 2, 5] = 0.5  # column 5: one sample only, kept
    X[:, 9] = -0.0
    kept = d0 - (len(zero) - 1)
    return X, rng.integers(0, classes, n), kept


def both(net, X, y, **kw):
    return (Landscape(net, X, y, **kw),
            Landscape(net, X, y, drop_zero_columns=False, **kw))


def dropped_weights(net, kept_mask):
    """Boolean mask (D,) of the first-layer weights of columns not in kept_mask."""
    h1, d0 = net.sizes[1], net.sizes[0]
    mask = np.zeros(net.num_params, bool)
    mask[:h1 * d0] = np.tile(~kept_mask, h1)
    return mask


@pytest.mark.parametrize("products", ["dense", "sparse"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "autoencoder"])
def test_dropped_columns_match_reference(loss, products):
    d0 = 21
    X, y, kept = zero_column_data(97, d0, seed=1, density=0.6)
    if loss == "cross_entropy":
        net = MLP([d0, 13, 7, 3], activation="tanh", bias=True)
    elif loss == "mse":
        net = MLP([d0, 13, 4], activation="softplus", loss="mse", bias=True)
        y = np.random.default_rng(2).standard_normal((97, 4))
    else:  # the targets are the inputs, all their columns
        net = MLP([d0, 8, d0], activation="sigmoid", loss="mse", bias=False)
        y = None
    ls, full = both(net, X, y, dtype="float64", input_products=products)
    assert ls.kept_columns == kept and full.kept_columns == d0
    assert ls.drop_zero_columns and not full.drop_zero_columns
    theta = net.init(4, seed=3, dtype="float64")
    loss_d, grad_d = ls.loss_and_grad(theta)
    loss_f, grad_f = full.loss_and_grad(theta)
    mask = dropped_weights(net, np.any((X != 0) | np.signbit(X), axis=0))
    assert mask.sum() == net.sizes[1] * (d0 - kept)
    assert np.all(grad_d[:, mask] == 0.0)  # exact zeros
    np.testing.assert_allclose(loss_d, loss_f, rtol=1e-13)
    np.testing.assert_allclose(grad_d, grad_f, rtol=1e-11, atol=1e-15)
    target = X if y is None else y
    for p in range(len(theta)):
        rl, rg = reference.loss_and_grad(net, theta[p], X, target)
        assert loss_d[p] == pytest.approx(rl, rel=1e-12)
        np.testing.assert_allclose(grad_d[p], rg, rtol=1e-9, atol=1e-13)
    # the data given back are the data given, bit for bit (-0.0 included)
    Xb, _, _ = ls.engine.dataset()
    assert Xb.tobytes() == np.ascontiguousarray(X).tobytes()


def test_every_consumer_agrees_with_the_full_engine():
    net = MLP([17, 9, 3], activation="softplus", bias=True)
    X, y, _ = zero_column_data(150, 17, seed=4)
    ls, full = both(net, X, y, dtype="float64", threads=2, chunk=40)
    th = net.init(3, seed=1, dtype="float64")
    d = net.init(3, seed=2, dtype="float64") - th
    mask = dropped_weights(net, np.any(X != 0, axis=0) | np.signbit(X).any(axis=0))

    def close(a, b, rtol=1e-12):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14)

    # sample subsets, accuracy
    samples = np.array([149, 3, 3, 75, 0, 20])
    for a, b in zip(ls.loss_and_grad(th, samples=samples), full.loss_and_grad(th, samples)):
        close(a, b)
    np.testing.assert_array_equal(ls.accuracy(th), full.accuracy(th))
    # per-vector minibatches
    mb = np.random.default_rng(0).integers(0, 150, (3, 12))
    a, b = ls.evaluate_each(th, mb), full.evaluate_each(th, mb)
    close(a[0], b[0])
    close(a[1], b[1])
    assert np.all(a[1][:, mask] == 0.0)
    # prepared lines with the gradient at the accepted points
    lines, u = np.array([0, 2, 1]), np.array([0.2, -0.4, 1.0])
    a = ls.engine.line_values(th, d, lines, u, grad=True)
    b = full.engine.line_values(th, d, lines, u, grad=True)
    for x, z in zip(a, b):
        close(x, z)
    assert np.all(a[1][:, mask] == 0.0)
    # Hessian-vector products: one point (kept between calls) and one per direction
    for t in (th[:1], th):
        a = ls.engine.hessian_vector(t, d, grad=True)
        b = full.engine.hessian_vector(t, d, grad=True)
        for x, z in zip(a, b):
            close(x, z, 1e-11)
        assert np.all(a[2][:, mask] == 0.0)
    # basis combinations, with held basis products, and the path objective
    rng = np.random.default_rng(5)
    V = net.init(5, seed=4, dtype="float64")
    index = rng.integers(0, 5, (6, 3)).astype(np.int32)
    coef = rng.standard_normal((6, 3))
    got = ls.engine.evaluate_combination(V, index, coef)
    close(got, full.engine.evaluate_combination(V, index, coef))
    ls.engine.hold_basis(V[:2])
    try:
        assert ls.engine.held_basis == 2
        close(ls.engine.evaluate_combination(V, index, coef), got)
    finally:
        ls.engine.release_basis(V[:2])
    assert ls.engine.held_basis == 0
    params = core.PathParams(n_modes=4, n_points=13, lam=0.1)
    C = 0.3 * rng.standard_normal((2, 4, net.num_params))
    v1, g1, e1 = core.PathBatchF64(ls.engine, th[:2], th[1:], params).objective(C)
    v2, g2, e2 = core.PathBatchF64(full.engine, th[:2], th[1:], params).objective(C)
    close(e1, e2)
    close(v1, v2)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-13)


def test_hessian_vector_against_differences():
    net = MLP([12, 6, 3], activation="tanh", bias=True)
    X, y, _ = zero_column_data(60, 12, seed=7)
    ls = Landscape(net, X, y, dtype="float64")
    assert ls.kept_columns < 12
    th = net.init(1, seed=1, dtype="float64")[0]
    v = np.random.default_rng(1).standard_normal(net.num_params)
    h = 1e-5
    fd = (reference.loss_and_grad(net, th + h * v, X, y)[1]
          - reference.loss_and_grad(net, th - h * v, X, y)[1]) / (2 * h)
    np.testing.assert_allclose(ls.hessian_vector(th, v), fd, rtol=1e-6, atol=1e-9)


def test_training_and_minimize_leave_dropped_weights_alone():
    from losstopo import train

    net = MLP([15, 10, 3], activation="relu", bias=True)
    X, y, _ = zero_column_data(200, 15, seed=9)
    ls, full = both(net, X, y, dtype="float64")
    mask = dropped_weights(net, np.any(X != 0, axis=0) | np.signbit(X).any(axis=0))
    theta0 = net.init(3, seed=2, dtype="float64")
    kw = dict(runs=3, epochs=2, lr=0.05, momentum=0.9, batch_size=32, seed=1,
              dtype="float64", progress=False, theta0=theta0)
    ta = np.asarray(train(net, ls, **kw).theta_final)
    tb = np.asarray(train(net, full, **kw).theta_final)
    np.testing.assert_allclose(ta, tb, rtol=1e-9, atol=1e-12)
    assert np.array_equal(ta[:, mask], theta0[:, mask])  # untouched, bit for bit
    ra = minimize(ls, theta0, max_iter=15)
    rb = minimize(full, theta0, max_iter=15)
    np.testing.assert_allclose(ra.x, rb.x, rtol=1e-7, atol=1e-9)
    assert np.array_equal(ra.x[:, mask], theta0[:, mask])


def test_threads_are_deterministic_and_float32_close():
    net = MLP([33, 64, 16, 5], activation="softplus", bias=True)
    X, y, kept = zero_column_data(401, 33, seed=9, classes=5, density=0.5)
    theta = net.init(20, seed=3)
    full = Landscape(net, X, y, drop_zero_columns=False, input_products="dense")
    ref = full.loss_and_grad(theta)
    for threads in (1, 2, 3):
        for products in ("dense", "sparse"):
            ls = Landscape(net, X, y, threads=threads, input_products=products)
            assert ls.kept_columns == kept
            first = ls.loss_and_grad(theta)
            again = ls.loss_and_grad(theta)
            for a, b in zip(first, again):
                assert np.array_equal(a, b)  # bitwise, for a given thread count
            np.testing.assert_allclose(first[0], ref[0], rtol=2e-6)
            np.testing.assert_allclose(first[1], ref[1], rtol=0,
                                       atol=3e-6 * np.abs(ref[1]).max())


def test_edge_cases_and_pickle():
    net = MLP([6, 4, 3])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 10)
    zeros = np.zeros((10, 6))
    ls = Landscape(net, zeros, y, dtype="float64")
    assert ls.kept_columns == 1  # all columns zero: one is kept
    theta = net.init(2, seed=0, dtype="float64")
    full = Landscape(net, zeros, y, dtype="float64", drop_zero_columns=False)
    for a, b in zip(ls.loss_and_grad(theta), full.loss_and_grad(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    no_zeros = rng.random((10, 6)) + 0.1
    assert Landscape(net, no_zeros, y).kept_columns == 6
    with pytest.raises(TypeError, match="drop_zero_columns"):
        Landscape(net, no_zeros, y, drop_zero_columns="yes")
    X, y2, kept = zero_column_data(30, 12, seed=3)
    net2 = MLP([12, 5, 3])
    for drop in (True, False):
        ls = Landscape(net2, X, y2, drop_zero_columns=drop)
        back = pickle.loads(pickle.dumps(ls))
        assert back.kept_columns == ls.kept_columns == (kept if drop else 12)
        assert back.drop_zero_columns is drop
        theta = net2.init(2, seed=0)
        for a, b in zip(back.loss_and_grad(theta), ls.loss_and_grad(theta)):
            assert np.array_equal(a, b)


def momentum_through_dropped_weights(landscape, net, theta0):
    """Two SGD epochs with momentum, the velocities set between them to be not zero in
    every first-layer weight: the dropped columns' weights must move by their velocity
    alone. Returns the parameters and the velocities at the end."""
    sgd = core.SGDParams(lr=0.05, momentum=0.9, batch_size=32)
    tr = core.TrainerF64(landscape.engine, None, theta0, "sgd", 2, sgd, 1,
                         list(range(len(theta0))), core.LBFGSParams())
    tr.run(1)
    state = tr.state()
    state["velocity"][:, :net.sizes[1] * net.sizes[0]] += 0.01
    tr.restore(1, state)
    tr.run(2)
    st = tr.state()
    return st["theta"], st["velocity"]


def test_momentum_in_dropped_weights_follows_the_update():
    net = MLP([15, 10, 3], activation="tanh", bias=True)
    X, y, _ = zero_column_data(200, 15, seed=11)
    ls, full = both(net, X, y, dtype="float64")
    theta0 = net.init(3, seed=2, dtype="float64")
    ta, va = momentum_through_dropped_weights(ls, net, theta0)
    tb, vb = momentum_through_dropped_weights(full, net, theta0)
    mask = dropped_weights(net, np.any(X != 0, axis=0) | np.signbit(X).any(axis=0))
    assert not np.array_equal(ta[:, mask], theta0[:, mask])  # moved by the velocity
    np.testing.assert_allclose(ta, tb, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-12)
