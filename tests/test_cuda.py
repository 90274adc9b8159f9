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


def pair(net, n=333, chunk=None, targets=False, seed=0):
    X, y = data(net, n, seed)
    if targets:  # MSE against separate targets (not the input)
        y = np.random.default_rng(seed + 1).random((n, net.sizes[-1]))
    cpu = Landscape(net, X, y, dtype="float64")
    gpu = Landscape(net, X, y, dtype="float64", device="cuda", chunk=chunk)
    return cpu, gpu


@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("chunk", [None, 7])
def test_evaluate_each_one_batched_pass(net, chunk):
    cpu, gpu = pair(net, chunk=chunk)
    theta = net.init(6, seed=1, dtype="float64")
    rng = np.random.default_rng(5)
    for B in (1, 20, 33):  # 33: chunks of 7 leave a partial chunk
        s = rng.integers(0, 333, (6, B))
        s[0, :] = s[0, 0]  # duplicate samples within one vector
        e1, g1 = cpu.evaluate_each(theta, s)
        e2, g2 = gpu.evaluate_each(theta, s)
        np.testing.assert_allclose(e2, e1, rtol=1e-11)
        np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-13)
    # Each vector really uses its own rows: equal to per-vector evaluation.
    for p in range(6):
        lp, gp = gpu.loss_and_grad(theta[p], samples=s[p])
        np.testing.assert_allclose(e2[p], lp, rtol=1e-11)
        np.testing.assert_allclose(g2[p], gp, rtol=1e-9, atol=1e-13)


def test_mse_with_targets_equals_cpu():
    net = losstopo.MLP([12, 5, 6, 3], activation="sigmoid", bias=True, loss="mse")
    cpu, gpu = pair(net, chunk=50, targets=True)
    theta = net.init(4, seed=2, dtype="float64")
    l1, g1 = cpu.loss_and_grad(theta)
    l2, g2 = gpu.loss_and_grad(theta)
    np.testing.assert_allclose(l2, l1, rtol=1e-11)
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-13)
    s = np.arange(40).reshape(4, 10)
    np.testing.assert_allclose(gpu.evaluate_each(theta, s)[1], cpu.evaluate_each(theta, s)[1],
                               rtol=1e-9, atol=1e-13)


def test_sample_indices_checked_by_the_engine():
    net = NETS[0]
    _, gpu = pair(net)
    theta = net.init(2, seed=1, dtype="float64")
    eng = gpu.engine
    with pytest.raises(ValueError, match="samples"):
        eng.evaluate(theta, samples=np.array([0, 333], dtype=np.int64))
    with pytest.raises(ValueError, match="samples"):
        eng.evaluate_each(theta, np.array([[0, 1], [2, -1]], dtype=np.int64))
    eng.evaluate(theta, samples=np.array([0, 332], dtype=np.int64))  # still usable


@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("chunk", [None, 50])
def test_prepared_lines_equal_cpu(net, chunk):
    cpu, gpu = pair(net, chunk=chunk)
    assert gpu.engine.offers_lines
    x = net.init(4, seed=3, dtype="float64")
    d = 0.1 * net.init(4, seed=4, dtype="float64")
    lines = np.array([2, 0, 3, 3, 1, 2], dtype=np.int64)
    u = np.array([0.5, -1.0, 0.0, 2.0, 0.25, 1.5])
    v1 = cpu.engine.line_values(x, d, lines, u)
    v2 = gpu.engine.line_values(x, d, lines, u)
    np.testing.assert_allclose(v2, v1, rtol=1e-11)
    np.testing.assert_allclose(v2, cpu.loss(x[lines] - u[:, None] * d[lines]), rtol=1e-10)
    with pytest.raises(ValueError, match="lines"):
        gpu.engine.line_values(x, d, np.array([4], dtype=np.int64), u[:1])


@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("chunk", [None, 50])
def test_combinations_equal_cpu(net, chunk):
    cpu, gpu = pair(net, chunk=chunk)
    assert gpu.engine.offers_combinations
    rng = np.random.default_rng(6)
    V = net.init(4, seed=7, dtype="float64")
    index = rng.integers(0, 4, (6, 3)).astype(np.int32)
    coef = rng.random((6, 3))
    e1 = cpu.engine.evaluate_combination(V, index, coef)
    e2 = gpu.engine.evaluate_combination(V, index, coef)
    np.testing.assert_allclose(e2, e1, rtol=1e-10)
    W = np.einsum("pk,pkd->pd", coef, V[index])
    np.testing.assert_allclose(e2, cpu.loss(W), rtol=1e-10)
    with pytest.raises(ValueError, match="index"):
        gpu.engine.evaluate_combination(V, np.full((6, 3), 4, dtype=np.int32), coef)


@pytest.mark.parametrize("objective", ["sum", "minimax"])
@pytest.mark.parametrize("net", [NETS[0], NETS[2], NETS[3]], ids=repr)
def test_path_gradients_on_cuda_equal_cpu(net, objective):
    # The path optimizer's gradient is evaluate_combination's projected gradient
    # (sum: projected in the first pass; minimax: a second pass with weights).
    cpu, gpu = pair(net, n=150)
    a, b = net.init(2, seed=4, dtype="float64")
    kw = dict(n_points=10, n_modes=3, steps=5, progress=False, optimizer="adam",
              objective=objective, refine=False)
    r1, r2 = losstopo.find_path(cpu, a, b, **kw), losstopo.find_path(gpu, a, b, **kw)
    assert r2.barrier == pytest.approx(r1.barrier, rel=1e-8)
    np.testing.assert_allclose(r2.path.coeffs, r1.path.coeffs, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(r2.history, r1.history, rtol=1e-8)


def test_golden_lbfgs_on_cuda_equals_cpu():
    # Golden-section trials run on the prepared lines.
    net = NETS[0]
    cpu, gpu = pair(net, n=200)
    x0 = net.init(3, seed=5, dtype="float64")
    m1 = losstopo.minimize(cpu, x0, max_iter=8, line_search="golden")
    m2 = losstopo.minimize(gpu, x0, max_iter=8, line_search="golden")
    np.testing.assert_allclose(m2.fun, m1.fun, rtol=1e-8)
    np.testing.assert_allclose(m2.x, m1.x, rtol=1e-6, atol=1e-9)


def test_cuda_is_reproducible():
    net = NETS[0]
    _, gpu = pair(net)
    theta = net.init(5, seed=1, dtype="float64")
    a = gpu.loss_and_grad(theta)
    b = gpu.loss_and_grad(theta)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cuda_engine_is_an_objective_of_the_core():
    from losstopo._native import core

    _, gpu = pair(NETS[0])
    assert isinstance(gpu.engine, core.ObjectiveF64)
    assert gpu.engine.offers_lines and gpu.engine.offers_combinations
