"""Curve families (Fourier, Bezier, polygonal chain) on the same path engine: points
against direct NumPy constructions, gradients against finite differences, fixed
endpoints, the straight line at zero coefficients, the measured barrier."""

import numpy as np
import pytest
from scipy.special import comb

import losstopo
from losstopo import MLP, FourierPath, Landscape, find_path
from losstopo._native import core
from losstopo.analytic import muller_brown, toy_gaussians
from losstopo.paths import basis

import reference  # noqa: E402

CURVES = ["fourier", "bezier", "polychain"]


def direct(curve, a, b, C, t):
    """The curve built from its own definition, not from the basis functions."""
    K = len(C)
    if curve == "fourier":
        return np.array([(1 - s) * a + s * b + sum(C[n] * np.sin((n + 1) * np.pi * s)
                                                   for n in range(K)) for s in t])
    n = K + 1
    ctrl = [a] + [(1 - k / n) * a + k / n * b + C[k - 1] for k in range(1, n)] + [b]
    if curve == "bezier":  # de Casteljau
        out = []
        for s in t:
            P = [np.array(p, dtype=float) for p in ctrl]
            while len(P) > 1:
                P = [(1 - s) * P[i] + s * P[i + 1] for i in range(len(P) - 1)]
            out.append(P[0])
        return np.array(out)
    knots = np.linspace(0, 1, n + 1)  # polychain: linear between the pivots
    ctrl = np.array(ctrl)
    return np.stack([np.interp(t, knots, ctrl[:, j]) for j in range(len(a))], axis=1)


def zero_energy(X):
    return np.zeros(len(X)), np.zeros_like(X)


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("K", [1, 2, 5])
def test_points_against_direct_constructions(curve, K):
    rng = np.random.default_rng(K)
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    C = rng.standard_normal((K, 4))
    t = np.linspace(0, 1, 23)
    want = direct(curve, a, b, C, t)
    np.testing.assert_allclose(FourierPath(a, b, C, curve=curve).at(t), want, rtol=1e-12,
                               atol=1e-12)
    pb = core.PathBatchF64(zero_energy, a[None], b[None],
                           core.PathParams(n_modes=K, n_points=9, curve=curve))
    np.testing.assert_allclose(pb.points(C[None], t)[0], want, rtol=1e-12, atol=1e-12)
    # endpoints fixed whatever the coefficients; zero coefficients: the straight line
    np.testing.assert_allclose(pb.points(C[None], np.array([0.0, 1.0]))[0], [a, b],
                               atol=1e-12)
    np.testing.assert_allclose(pb.points(np.zeros((1, K, 4)), t)[0],
                               np.outer(1 - t, a) + np.outer(t, b), atol=1e-12)


def test_basis_definitions():
    t = np.linspace(0, 1, 11)
    B = basis("bezier", 1, t)  # Garipov's quadratic: 2 t (1 - t)
    np.testing.assert_allclose(B[:, 0], 2 * t * (1 - t))
    full = [comb(4, k) * t ** k * (1 - t) ** (4 - k) for k in range(5)]
    np.testing.assert_allclose(basis("bezier", 3, t), np.stack(full[1:4], axis=1))
    H = basis("polychain", 4, t)
    assert H.max() == pytest.approx(1.0) and (H >= 0).all()
    np.testing.assert_allclose(H[[0, -1]], 0, atol=1e-15)
    with pytest.raises(ValueError, match="curve"):
        basis("spline", 2, t)
    with pytest.raises(ValueError, match="curve"):
        find_path(toy_gaussians(), *toy_gaussians().endpoints, curve="spline")


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("objective", ["sum", "sum_squares", "minimax"])
def test_gradients_against_finite_differences(curve, objective):
    rng = np.random.default_rng(5)
    toy = toy_gaussians()
    a, b = np.stack(toy.endpoints[:1]), np.stack(toy.endpoints[1:])
    pb = core.PathBatchF64(toy, a, b, core.PathParams(n_modes=4, n_points=20, lam=3.0,
                                                      objective=objective, temperature=0.05,
                                                      curve=curve))
    reference.path_gradient_check(pb, 0.2 * rng.standard_normal((1, 4, 2)), rng)
    # and on the native engine, through its basis-combination fast path
    net = MLP([5, 4, 3], activation="softplus")
    X, y = losstopo.datasets.synthetic(60, 5, 3, seed=0, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    th = net.init(4, seed=1, dtype="float64")
    pb = core.PathBatchF64(ls.engine, th[:2], th[2:],
                           core.PathParams(n_modes=3, n_points=12, lam=0.1, objective=objective,
                                           temperature=0.1, curve=curve))
    assert pb.uses_combinations
    C = 0.1 * rng.standard_normal((2, 3, net.num_params))
    reference.path_gradient_check(pb, C, rng)
    _, _, E = pb.objective(C, grad=False)
    W = pb.points(C, pb.t)
    np.testing.assert_allclose(E, ls.loss(W.reshape(-1, net.num_params)).reshape(2, -1),
                               rtol=1e-12)


@pytest.mark.parametrize("curve", CURVES)
def test_found_paths_go_below_the_straight_line(curve):
    mb = muller_brown(scale=0.01)
    a, b = mb.endpoints
    r = find_path(mb, a, b, curve=curve, n_modes=4, n_points=60, lam=0.1, lr=0.02, steps=300,
                  objective="minimax", progress=False)
    assert r.path.curve == curve
    assert r.barrier_refined < 0.5 * r.straight["barrier_refined"]
    np.testing.assert_allclose(r.path.at(np.array([0.0, 1.0])), [a, b], atol=1e-12)
    # the measured energies are the landscape's at the path's own points
    np.testing.assert_allclose(r.losses, mb.energy(r.path.at(r.t)), rtol=1e-10)
