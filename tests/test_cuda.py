"""The CUDA backend against the CPU engine in float64 (skipped without a GPU)."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape

pytestmark = pytest.mark.skipif(not losstopo.cuda_available(),
                                reason="no CUDA backend or no GPU in this build/machine")

NETS = [
    MLP([12, 9, 7, 4], activation="relu", bias=True),
    MLP([12, 9, 4], activation="softplus", bias=False),
    MLP([12, 9, 8, 12], activation="tanh", bias=True, output="sigmoid", loss="mse"),
    MLP([12, 4], bias=True),
]


def data(net, n=333, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, net.sizes[0]))
    y = rng.integers(0, net.sizes[-1], n) if net.loss == "cross_entropy" else None
    return X, y


@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("chunk", [None, 50])
def test_cuda_equals_cpu_float64(net, chunk):
    X, y = data(net)
    cpu = Landscape(net, X, y, dtype="float64")
    gpu = Landscape(net, X, y, dtype="float64", device="cuda", chunk=chunk)
    theta = net.init(5, seed=1, dtype="float64")
    l1, g1 = cpu.loss_and_grad(theta)
    l2, g2 = gpu.loss_and_grad(theta)
    np.testing.assert_allclose(l2, l1, rtol=1e-11)
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-13)
    if net.loss == "cross_entropy":
        np.testing.assert_allclose(gpu.accuracy(theta), cpu.accuracy(theta))
    idx = np.random.default_rng(3).permutation(len(X))[:77]
    np.testing.assert_allclose(gpu.loss(theta, samples=idx), cpu.loss(theta, samples=idx),
                               rtol=1e-11)
    s = np.stack([np.arange(20) + 3 * p for p in range(5)])
    e1, eg1 = cpu.evaluate_each(theta, s)
    e2, eg2 = gpu.evaluate_each(theta, s)
    np.testing.assert_allclose(e2, e1, rtol=1e-11)
    np.testing.assert_allclose(eg2, eg1, rtol=1e-9, atol=1e-13)


def test_cuda_float32_and_tf32_close_to_float64():
    net = losstopo.fcp()
    X, y = data(net, n=2000)
    theta = net.init(4, seed=2, dtype="float64")
    ref_l, ref_g = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    for precision, tol in (("fp32", 1e-4), ("tf32", 1e-2)):
        l, g = Landscape(net, X, y, device="cuda", precision=precision).loss_and_grad(theta)
        np.testing.assert_allclose(l, ref_l, rtol=tol)
        assert np.abs(g - ref_g).max() <= tol * np.abs(ref_g).max()


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_training_on_cuda_equals_cpu(method):
    net = NETS[0]
    X, y = data(net, n=200)
    kw = dict(method=method, runs=3, epochs=3, batch_size=32, dtype="float64", progress=False)
    a = losstopo.train(net, Landscape(net, X, y, dtype="float64"), **kw)
    b = losstopo.train(net, Landscape(net, X, y, dtype="float64", device="cuda"), **kw)
    np.testing.assert_allclose(b.theta_final, a.theta_final, rtol=1e-8, atol=1e-11)


def test_paths_and_minimize_on_cuda_equal_cpu():
    net = NETS[1]
    X, y = data(net, n=150)
    cpu = Landscape(net, X, y, dtype="float64")
    gpu = Landscape(net, X, y, dtype="float64", device="cuda")
    a, b = net.init(2, seed=4, dtype="float64")
    kw = dict(n_points=10, n_modes=3, steps=5, progress=False, optimizer="adam")
    r1, r2 = losstopo.find_path(cpu, a, b, **kw), losstopo.find_path(gpu, a, b, **kw)
    assert r2.barrier == pytest.approx(r1.barrier, rel=1e-8)
    x0 = net.init(3, seed=5, dtype="float64")
    m1 = losstopo.minimize(cpu, x0, max_iter=10, line_search="strong_wolfe")
    m2 = losstopo.minimize(gpu, x0, max_iter=10, line_search="strong_wolfe")
    np.testing.assert_allclose(m2.fun, m1.fun, rtol=1e-8)
