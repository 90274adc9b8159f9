"""Exact Hessian-vector products (the engine's R-operator) against finite differences
of the independent NumPy gradient and against torch's exact Hessian; the curvature
measures built on them (Lanczos, Hutchinson, stochastic Lanczos quadrature) against
the eigen-decomposition of the exact Hessian of a tiny network."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape
from losstopo import curvature
from reference import loss_and_grad

CASES = [  # activation, output, loss, bias
    ("softplus", "identity", "cross_entropy", True),
    ("tanh", "identity", "cross_entropy", False),
    ("sigmoid", "sigmoid", "cross_entropy", True),
    ("relu", "identity", "mse", True),
    ("tanh", "sigmoid", "mse", False),
    ("identity", "identity", "mse", True),
]


def tiny(activation="softplus", output="identity", loss="cross_entropy", bias=True,
         sizes=(6, 5, 4, 3), n=40, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    net = MLP(list(sizes), activation=activation, output=output, loss=loss, bias=bias)
    X = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, sizes[-1], n) if loss == "cross_entropy" else rng.normal(size=(n, sizes[-1]))
    return net, X, y, Landscape(net, X, y, dtype=dtype, chunk=7)


def fd_hvp(net, X, y, theta, v, h=1e-5):
    g = lambda t: loss_and_grad(net, t, X, y)[1]  # noqa: E731
    return (g(theta + h * v) - g(theta - h * v)) / (2 * h)


@pytest.mark.parametrize("activation,output,loss,bias", CASES)
def test_products_match_finite_differences_of_the_reference(activation, output, loss, bias):
    net, X, y, ls = tiny(activation, output, loss, bias)
    rng = np.random.default_rng(1)
    theta = rng.normal(size=net.num_params)
    V = rng.normal(size=(4, net.num_params))
    hv = ls.hessian_vector(theta, V)
    fd = np.stack([fd_hvp(net, X, y, theta, v) for v in V])
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())
    # One point per direction gives each direction its own point.
    thetas = rng.normal(size=(4, net.num_params))
    hv2 = ls.hessian_vector(thetas, V)
    fd2 = np.stack([fd_hvp(net, X, y, t, v) for t, v in zip(thetas, V)])
    np.testing.assert_allclose(hv2, fd2, rtol=1e-6, atol=1e-7 * np.abs(fd2).max())


def test_loss_and_gradient_come_with_the_products():
    net, X, y, ls = tiny()
    theta = net.init(2, seed=3, dtype="float64")
    V = np.random.default_rng(0).normal(size=(2, net.num_params))
    loss, grad, hv = ls.engine.hessian_vector(theta, V, True, None)
    ref = [loss_and_grad(net, t, X, y) for t in theta]
    np.testing.assert_allclose(loss, [r[0] for r in ref], rtol=1e-12)
    np.testing.assert_allclose(grad, np.stack([r[1] for r in ref]), rtol=1e-9, atol=1e-12)


def test_single_layer_network_and_sample_subsets():
    net, X, y, ls = tiny("identity", "sigmoid", "mse", True, sizes=(5, 3), n=30)
    theta = np.random.default_rng(2).normal(size=net.num_params)
    V = np.random.default_rng(3).normal(size=(3, net.num_params))
    s = np.arange(4, 23)
    hv = ls.hessian_vector(theta, V, samples=s)
    fd = np.stack([fd_hvp(net, X[s], y[s], theta, v) for v in V])
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_float32_agrees_with_float64_and_results_are_deterministic():
    net, X, y, ls64 = tiny("tanh", sizes=(20, 16, 8, 4), n=500)
    ls32 = Landscape(net, X, y, dtype="float32", chunk=64)
    theta = net.init(1, seed=0, dtype="float64")[0]
    V = np.random.default_rng(0).normal(size=(5, net.num_params))
    h64 = ls64.hessian_vector(theta, V)
    h32 = ls32.hessian_vector(theta, V)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=2e-3, atol=2e-4 * np.abs(h64).max())
    np.testing.assert_array_equal(ls32.hessian_vector(theta, V), h32)


def exact_hessian(ls, theta):
    D = ls.num_params
    return ls.hessian_vector(theta, np.eye(D))


def test_hessian_is_symmetric_and_linear():
    net, X, y, ls = tiny("sigmoid")
    theta = np.random.default_rng(5).normal(size=net.num_params)
    H = exact_hessian(ls, theta)
    np.testing.assert_allclose(H, H.T, atol=1e-12 * np.abs(H).max())
    v = np.random.default_rng(6).normal(size=net.num_params)
    np.testing.assert_allclose(ls.hessian_vector(theta, v), H @ v, atol=1e-12 * np.abs(H).max())


@pytest.mark.parametrize("activation,output,loss,bias", CASES[:4])
def test_hessian_equals_torch_exact_hessian(activation, output, loss, bias):
    torch = pytest.importorskip("torch")
    net, X, y, ls = tiny(activation, output, loss, bias)
    theta = np.random.default_rng(7).normal(size=net.num_params)
    names = list(net.activations) + [net.output]
    fns = {"identity": lambda z: z, "relu": torch.relu, "softplus": torch.nn.functional.softplus,
           "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    Xt = torch.tensor(X, dtype=torch.float64)

    def f(t):
        a, off = Xt, 0
        for l, (i, o) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
            W = t[off: off + i * o].reshape(o, i)
            off += i * o
            z = a @ W.T
            if net.bias:
                z = z + t[off: off + o]
                off += o
            a = fns[names[l]](z)
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(a, torch.tensor(y))
        return ((a - torch.tensor(y, dtype=torch.float64)) ** 2).mean()

    H_torch = torch.autograd.functional.hessian(f, torch.tensor(theta)).numpy()
    H = exact_hessian(ls, theta)
    np.testing.assert_allclose(H, H_torch, rtol=1e-9, atol=1e-11 * np.abs(H_torch).max())


def test_lanczos_eigenvalues_match_eigh():
    net, X, y, ls = tiny("softplus", n=60)
    theta = np.random.default_rng(8).normal(size=net.num_params)
    ev = np.linalg.eigvalsh(exact_hessian(ls, theta))
    vals, vecs, products = curvature.top_eigenvalues(ls, theta, k=3, tol=1e-10)
    np.testing.assert_allclose(vals, ev[::-1][:3], rtol=1e-8)
    H = exact_hessian(ls, theta)
    np.testing.assert_allclose(vecs @ H @ vecs.T, np.diag(vals), atol=1e-7 * ev.max())
    assert 3 < products <= net.num_params
    arpack = curvature.top_eigenvalues(ls, theta, k=3, tol=1e-10, method="arpack")
    np.testing.assert_allclose(arpack[0], vals, rtol=1e-8)
    # The batched Lanczos runs: the top eigenvalue of several points at once.
    thetas = np.random.default_rng(9).normal(size=(3, net.num_params))
    tops = [np.linalg.eigvalsh(exact_hessian(ls, t))[-1] for t in thetas]
    np.testing.assert_allclose(curvature.sharpness(ls, thetas, tol=1e-9), tops, rtol=1e-6)


def test_hutchinson_trace_is_within_its_error():
    net, X, y, ls = tiny("tanh", n=60)
    theta = np.random.default_rng(10).normal(size=net.num_params)
    exact = np.trace(exact_hessian(ls, theta))
    tr, se = curvature.hessian_trace(ls, theta, probes=400, batch=64, seed=1)
    assert se > 0 and abs(tr - exact) < 4 * se
    # Seeds make it reproducible; more probes shrink the error.
    assert curvature.hessian_trace(ls, theta, probes=400, batch=64, seed=1) == (tr, se)
    assert curvature.hessian_trace(ls, theta, probes=40, seed=1)[1] > se


def test_spectral_density_recovers_the_spectrum():
    net, X, y, ls = tiny("softplus", sizes=(4, 3, 3), n=50)
    theta = np.random.default_rng(11).normal(size=net.num_params)
    H = exact_hessian(ls, theta)
    ev = np.linalg.eigvalsh(H)
    D = net.num_params
    d = curvature.spectral_density(ls, theta, probes=64, steps=D, seed=0)
    # Full Lanczos: the nodes are the eigenvalues, the weights sum to 1 per probe.
    np.testing.assert_allclose(d.nodes.min(), ev.min(), atol=1e-8 * np.abs(ev).max())
    np.testing.assert_allclose(d.nodes.max(), ev.max(), rtol=1e-8)
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, rtol=1e-10)
    area = np.sum(d.density) * (d.grid[1] - d.grid[0])
    assert abs(area - 1.0) < 0.02
    # Its trace is a Hutchinson estimate with 64 probes: near the exact one.
    assert abs(d.trace - np.trace(H)) < 0.25 * np.abs(ev).sum()


def test_summary_and_top_level_name():
    net, X, y, ls = tiny()
    theta = net.init(1, seed=0, dtype="float64")[0]
    s = losstopo.hessian(ls, theta, top_k=2, trace_probes=16, density_probes=2,
                         density_steps=10)
    assert s.eigenvalues.shape == (2,) and s.eigenvectors.shape == (2, net.num_params)
    assert s.eigenvalues[0] >= s.eigenvalues[1]
    assert s.density is not None and s.products["trace"] == 16


def test_bad_input_is_named():
    net, X, y, ls = tiny()
    theta = np.zeros(net.num_params)
    with pytest.raises(ValueError, match="v: expected shape"):
        ls.hessian_vector(theta, np.zeros(3))
    with pytest.raises(ValueError, match="v: contains NaN"):
        ls.hessian_vector(theta, np.full(net.num_params, np.nan))
    with pytest.raises(ValueError, match="theta: expected one point or one per direction"):
        ls.hessian_vector(np.zeros((2, net.num_params)), np.zeros((3, net.num_params)))
    with pytest.raises(ValueError, match="samples"):
        ls.hessian_vector(theta, theta, samples=[0, 99])
    with pytest.raises(TypeError, match="hessian_vector"):
        curvature.hessian_trace(lambda t: (0.0, t), theta)
    with pytest.raises(ValueError, match="theta: expected shape"):
        curvature.top_eigenvalues(ls, np.zeros(5))
    with pytest.raises(ValueError, match="probes"):
        curvature.hessian_trace(ls, theta, probes=1)


def test_products_at_a_kept_point_equal_fresh_ones_bitwise():
    """Calls at one point keep its forward and backward pass; the results do not depend
    on whether they were kept, and another point or setting is never served stale."""
    net, X, y, _ = tiny("tanh", sizes=(9, 8, 6, 4), n=300)
    rng = np.random.default_rng(12)
    theta, other = rng.normal(size=(2, net.num_params))
    V = rng.normal(size=(5, net.num_params))
    for dtype in ("float64", "float32"):
        kept = Landscape(net, X, y, dtype=dtype)
        first = kept.hessian_vector(theta, V[:1])  # fills the kept pass
        again = kept.hessian_vector(theta, V)      # uses it, with another P
        fresh = Landscape(net, X, y, dtype=dtype).hessian_vector(theta, V)
        np.testing.assert_array_equal(again, fresh)
        np.testing.assert_array_equal(
            first, Landscape(net, X, y, dtype=dtype).hessian_vector(theta, V[:1]))
        # another point, then the first again; a sample subset; other threads
        np.testing.assert_array_equal(kept.hessian_vector(other, V),
                                      Landscape(net, X, y, dtype=dtype).hessian_vector(other, V))
        np.testing.assert_array_equal(kept.hessian_vector(theta, V), fresh)
        s = np.arange(0, 300, 2)
        np.testing.assert_allclose(kept.hessian_vector(theta, V, samples=s),
                                   np.stack([fd_hvp(net, X[s], y[s], theta, v) for v in V]),
                                   rtol=2e-3 if dtype == "float32" else 1e-6,
                                   atol=1e-3 if dtype == "float32" else 1e-8)
        kept.threads = 1
        np.testing.assert_array_equal(
            kept.hessian_vector(theta, V),
            Landscape(net, X, y, dtype=dtype, threads=1).hessian_vector(theta, V))
        # the loss that comes with the products is the kept pass's
        loss, _, _ = kept.engine.hessian_vector(theta[None].astype(dtype), V.astype(dtype),
                                                False, None)
        assert loss[0] == pytest.approx(float(kept.loss(theta)), rel=1e-5)


def test_lanczos_on_a_tiny_scale_is_not_cut_short():
    """The breakdown test is relative: a Hessian of scale 1e-9 (a near-zero loss)
    still gets its top eigenvalue, not a one-step Rayleigh quotient."""
    D = 40
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    ev = np.linspace(-1e-10, 1e-9, D)
    H = (Q * ev) @ Q.T

    class Quadratic:
        num_params, dtype = D, np.float64

        def hessian_vector(self, theta, V, samples=None):
            return np.asarray(V) @ H

    top = curvature.sharpness(Quadratic(), np.zeros((2, D)), tol=1e-8)
    np.testing.assert_allclose(top, ev[-1], rtol=1e-6)
    vals, _, _ = curvature.top_eigenvalues(Quadratic(), np.zeros(D), k=2, tol=1e-8)
    np.testing.assert_allclose(vals, ev[::-1][:2], rtol=1e-6)
