"""Weight matching: the function is preserved exactly, a planted permutation is
recovered, independently trained solutions come closer."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape
from losstopo.align import align, align_to_common, permute


def random_perms(net, seed):
    rng = np.random.default_rng(seed)
    return [rng.permutation(h) for h in net.sizes[1:-1]]


@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_permutation_preserves_the_function(activation, bias, dtype):
    net = MLP([7, 6, 5, 4], activation=activation, bias=bias)
    X, y = losstopo.datasets.synthetic(50, 7, 4, seed=0, dtype=dtype)
    ls = Landscape(net, X, y, dtype=dtype)
    theta = net.init(3, seed=1, dtype=dtype)
    moved = np.stack([permute(net, t, random_perms(net, i)) for i, t in enumerate(theta)])
    assert moved.dtype == np.dtype(dtype) and not np.array_equal(moved, theta)
    # The same multiset of parameters, and the same loss, gradient norm and accuracy.
    np.testing.assert_array_equal(np.sort(moved, axis=1), np.sort(theta, axis=1))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(ls.loss(moved), ls.loss(theta), rtol=rtol)
    np.testing.assert_array_equal(ls.accuracy(moved), ls.accuracy(theta))
    g0, g1 = ls.loss_and_grad(theta)[1], ls.loss_and_grad(moved)[1]
    np.testing.assert_allclose(np.linalg.norm(g1, axis=1), np.linalg.norm(g0, axis=1),
                               rtol=10 * rtol)


def test_autoencoder_outputs_are_unchanged():
    net = losstopo.autoencoder()
    X = np.random.default_rng(0).random((20, 784)).astype(np.float64)
    ls = Landscape(net, X, None, dtype="float64")
    theta = net.init(1, seed=0, dtype="float64")[0]
    moved = permute(net, theta, random_perms(net, 3))
    assert ls.loss(moved) == pytest.approx(ls.loss(theta), rel=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_weight_matching_recovers_a_planted_permutation(bias):
    net = MLP([12, 16, 16, 8, 3], activation="softplus", bias=bias)
    theta = net.init(1, seed=4, dtype="float64")[0]
    perms = random_perms(net, 5)
    moved = permute(net, theta, perms)
    a = align(net, theta, moved)
    np.testing.assert_array_equal(a.theta, theta)  # exactly back
    assert a.distance_after == 0 and a.distance_before > 0
    # the permutation found undoes the planted one
    for p, q in zip(perms, a.perms):
        np.testing.assert_array_equal(p[q], np.arange(len(p)))


def test_alignment_brings_independent_solutions_closer():
    net = MLP([10, 24, 24, 3], activation="tanh", bias=True)
    X, y = losstopo.datasets.synthetic(300, 10, 3, seed=2, dtype="float64")
    ens = losstopo.train(net, (X, y), method="lbfgs", runs=4, epochs=60, seed=0,
                         dtype="float64", progress=False)
    th = ens.theta_final
    a = align(net, th[0], th[1:])
    assert a.theta.shape == th[1:].shape and len(a.perms) == 3
    assert (a.distance_after < 0.9 * a.distance_before).all()
    np.testing.assert_allclose(a.distance_before, np.linalg.norm(th[1:] - th[0], axis=1))
    ls = Landscape(net, X, y, dtype="float64")
    np.testing.assert_allclose(ls.loss(a.theta), ls.loss(th[1:]), rtol=1e-10)
    # Aligning the reference to itself changes nothing; a common frame keeps row 0.
    c = align_to_common(net, th)
    np.testing.assert_array_equal(c.theta[0], th[0])
    np.testing.assert_array_equal(c.theta[1:], a.theta)


def test_bad_input():
    net = MLP([4, 3, 2])
    theta = net.init(1, seed=0)[0]
    with pytest.raises(TypeError, match="MLP"):
        align(object(), theta, theta)
    with pytest.raises(ValueError, match="method"):
        align(net, theta, theta, method="activations")
    with pytest.raises(ValueError, match="theta"):
        align(net, theta, np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        align(net, theta, np.full_like(theta, np.nan))
    with pytest.raises(ValueError, match="perms"):
        permute(net, theta, [np.array([0, 0, 1])])


def test_paths_between_aligned_endpoints():
    net = MLP([6, 8, 8, 3], activation="tanh", bias=True)
    X, y = losstopo.datasets.synthetic(120, 6, 3, seed=3, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    a = net.init(1, seed=0, dtype="float64")[0]
    b = permute(net, a, random_perms(net, 1))  # the same function, far away
    kw = dict(n_points=9, n_modes=2, steps=3, progress=False)
    plain = losstopo.find_path(ls, a, b, **kw)
    al = losstopo.find_path(ls, a, b, align=True, **kw)
    assert not plain.aligned and plain.distance_before is None
    assert al.aligned and al.distance_before > 0 and al.distance_after == 0
    # b aligned is a itself: the path is flat at the endpoints' loss
    assert al.barrier == pytest.approx(al.endpoint_losses[0], rel=1e-12)
    assert plain.straight_barrier > al.barrier
    thetas = np.stack([a, b, permute(net, a, random_perms(net, 2))])
    bm = losstopo.barrier_matrix(ls, thetas, pairs=3, align=True, **kw)
    np.testing.assert_allclose(bm["distance_after"], 0, atol=1e-12)
    assert (bm["distance_before"][bm["pairs"][:, 0] == 0] > 0).all()
    assert "distance_before" not in losstopo.barrier_matrix(ls, thetas, pairs=1, **kw)
    with pytest.raises(TypeError, match="MLP"):
        losstopo.find_path(lambda X: (X.sum(1), np.ones_like(X)), a, b, align=True, **kw)
