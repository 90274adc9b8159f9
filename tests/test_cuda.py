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
    # on a subset of the samples (stochastic path steps), in chunks when chunk is set
    samples = np.sort(rng.choice(cpu.num_samples, 70, replace=False)).astype(np.int64)
    s1 = cpu.engine.evaluate_combination(V, index, coef, samples=samples)
    s2 = gpu.engine.evaluate_combination(V, index, coef, samples=samples)
    np.testing.assert_allclose(s2, s1, rtol=1e-10)
    np.testing.assert_allclose(s2, cpu.loss(W, samples=samples), rtol=1e-10)
    with pytest.raises(ValueError, match="samples"):
        gpu.engine.evaluate_combination(V, index, coef, samples=np.array([10**6]))


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


def test_stochastic_path_steps_on_cuda_equal_cpu():
    net = NETS[0]
    cpu, gpu = pair(net, n=150)
    a, b = net.init(2, seed=4, dtype="float64")
    kw = dict(n_points=10, n_modes=3, steps=5, progress=False, batch_size=40, seed=3,
              refine=False)
    r1, r2 = losstopo.find_path(cpu, a, b, **kw), losstopo.find_path(gpu, a, b, **kw)
    np.testing.assert_allclose(r2.history, r1.history, rtol=1e-8)
    np.testing.assert_allclose(r2.path.coeffs, r1.path.coeffs, rtol=1e-7, atol=1e-10)


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


# ---------------------------------------------------------------- SGD epochs on the device
# CudaLandscape runs whole SGD epochs itself (Objective::run_sgd_epoch): parameters,
# velocities and minibatch orders stay on the device for an epoch, and it must give
# what the generic loop (sgd.cpp) gives on the CPU engine.

N_SGD, B_SGD = 200, 32  # 7 steps per epoch, the last of 8 samples


def sgd_train(net, landscape, theta0, tmp_path, name, epochs=2, **kw):
    """The ensemble and the final velocities (from the checkpoint) of SGD from theta0."""
    ck = tmp_path / f"{name}.npz"
    ens = losstopo.train(net, landscape, method="sgd", runs=len(theta0), theta0=theta0,
                         epochs=epochs, batch_size=B_SGD, dtype=landscape.dtype, progress=False,
                         checkpoint=ck, **kw)
    with np.load(ck) as st:
        velocity = st["velocity"]
    return ens, velocity


def assert_same_training(a, va, b, vb, rtol=1e-8, atol=1e-11):
    np.testing.assert_array_equal(b.status, a.status)
    np.testing.assert_allclose(b.theta_final, a.theta_final, rtol=rtol, atol=atol)
    np.testing.assert_allclose(vb, va, rtol=rtol, atol=atol)
    np.testing.assert_allclose(b.train_loss, a.train_loss, rtol=rtol)


@pytest.mark.parametrize("shared_order", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("net,chunk", [(NETS[0], None), (NETS[2], 7)], ids=["relu-ce", "mse-chunk7"])
def test_sgd_epochs_on_cuda_equal_cpu(net, chunk, momentum, shared_order, tmp_path):
    cpu, gpu = pair(net, n=N_SGD, chunk=chunk)
    theta0 = net.init(4, seed=1, dtype="float64")
    kw = dict(momentum=momentum, shared_order=shared_order)
    a, va = sgd_train(net, cpu, theta0, tmp_path, "cpu", **kw)
    b, vb = sgd_train(net, gpu, theta0, tmp_path, "gpu", **kw)
    assert_same_training(a, va, b, vb)
    assert all("non-finite" not in m for m in b.messages)
    assert not np.allclose(b.theta_final, theta0)
    if momentum > 0:
        assert np.abs(vb).max() > 0


def diverging_theta0(net, R=4, runs=(2,)):
    """R initializations where the first-layer weights of `runs` are scaled by 1e150: the
    logits are then ~1e149, the first step's gradient ~1e149, and after that step the
    logits overflow, so the second minibatch loss is not finite (on any order)."""
    theta0 = net.init(R, seed=1, dtype="float64")
    W1 = net.sizes[0] * net.sizes[1]
    theta0[list(runs), :W1] *= 1e150
    return theta0


@pytest.mark.parametrize("shared_order", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_run_going_non_finite_stops_alone_on_cuda(momentum, shared_order, tmp_path):
    net = NETS[0]
    cpu, gpu = pair(net, n=N_SGD)
    theta0 = diverging_theta0(net)
    kw = dict(momentum=momentum, shared_order=shared_order)
    a, va = sgd_train(net, cpu, theta0, tmp_path, "cpu", **kw)
    b, vb = sgd_train(net, gpu, theta0, tmp_path, "gpu", **kw)
    # The CPU engine's reference: run 2 stopped in the first epoch, the others went on.
    assert "non-finite" in a.messages[2]
    assert all("non-finite" not in a.messages[r] for r in (0, 1, 3))
    assert_same_training(a, va, b, vb)
    # Run 2 keeps its parameters of before the failing step: finite, and one step
    # away from theta0 (it stopped at the second step of the first epoch).
    assert np.isfinite(b.theta_final[2]).all() and not np.array_equal(b.theta_final[2], theta0[2])
    assert np.isnan(b.train_loss[2, 1:]).all()
    # The others trained through both epochs (the second started with run 2 inactive).
    assert np.isfinite(b.train_loss[[0, 1, 3]]).all()


def test_sgd_all_runs_going_non_finite_on_cuda(tmp_path):
    net = NETS[0]
    cpu, gpu = pair(net, n=N_SGD)
    theta0 = diverging_theta0(net, R=3, runs=(0, 1, 2))
    a, va = sgd_train(net, cpu, theta0, tmp_path, "cpu", momentum=0.5)
    b, vb = sgd_train(net, gpu, theta0, tmp_path, "gpu", momentum=0.5)
    assert all("non-finite" in m for m in a.messages)
    assert_same_training(a, va, b, vb)


def test_sgd_float32_on_cuda_close_to_cpu(tmp_path):
    net = NETS[0]
    X, y = data(net, n=N_SGD)
    cpu = Landscape(net, X, y, dtype="float32")
    gpu = Landscape(net, X, y, dtype="float32", device="cuda")
    theta0 = net.init(3, seed=1, dtype="float32")
    a, va = sgd_train(net, cpu, theta0, tmp_path, "cpu", momentum=0.9)
    b, vb = sgd_train(net, gpu, theta0, tmp_path, "gpu", momentum=0.9)
    np.testing.assert_allclose(b.theta_final, a.theta_final, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vb, va, rtol=1e-3, atol=1e-5)


def test_sgd_epoch_stays_on_the_device():
    # With the capability, one epoch moves the parameters up and down once and only
    # the step losses in between; the generic loop would move all parameters (and
    # gradients) every step. Only the emulated module (tests/cuda_emulation) counts
    # the bytes it copies.
    from losstopo._native import cuda_module

    cuda = cuda_module()
    if not getattr(cuda, "EMULATED", False):
        pytest.skip("copied bytes are counted by the CPU emulation of the CUDA module only")
    net = NETS[0]
    _, gpu = pair(net, n=N_SGD)
    R, D, n = 3, net.num_params, N_SGD
    steps = -(-n // B_SGD)
    theta0 = net.init(R, seed=1, dtype="float64")

    def copied(epochs):
        before = cuda._emulation_counters()
        losstopo.train(net, gpu, method="sgd", runs=R, theta0=theta0, epochs=epochs,
                       batch_size=B_SGD, dtype="float64", progress=False)
        after = cuda._emulation_counters()
        return {k: after[k] - before[k] for k in ("bytes_to_host", "bytes_to_device")}

    # One epoch more: the epoch itself and one more full-dataset evaluation (losses,
    # accuracies; parameters up).
    one, zero = copied(1), copied(0)
    down = one["bytes_to_host"] - zero["bytes_to_host"]
    up = one["bytes_to_device"] - zero["bytes_to_device"]
    generic_down = steps * R * D * 8  # gradients every step
    print(f"one epoch more: {down} bytes down, {up} up (R*D*8 = {R * D * 8})")
    assert down <= R * D * 8 + (steps + 2) * R * 8, down
    assert down < generic_down / 3
    assert up <= 2 * R * D * 8 + R * n * 8, up  # parameters twice, the orders once


@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("chunk", [None, 50])
def test_hessian_vector_products_on_cuda_equal_cpu(net, chunk):
    X, y = data(net)
    cpu = Landscape(net, X, y, dtype="float64")
    gpu = Landscape(net, X, y, dtype="float64", device="cuda", chunk=chunk)
    assert gpu.engine.offers_hessian_vector
    rng = np.random.default_rng(4)
    theta = net.init(3, seed=1, dtype="float64")
    V = rng.normal(size=(3, net.num_params))
    np.testing.assert_allclose(gpu.hessian_vector(theta[0], V), cpu.hessian_vector(theta[0], V),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpu.hessian_vector(theta, V), cpu.hessian_vector(theta, V),
                               rtol=1e-9, atol=1e-12)
    idx = np.random.default_rng(3).permutation(len(X))[:77]
    np.testing.assert_allclose(gpu.hessian_vector(theta[1], V[:2], samples=idx),
                               cpu.hessian_vector(theta[1], V[:2], samples=idx),
                               rtol=1e-9, atol=1e-12)
    # Loss and gradient come with the products, as on the CPU.
    l1, g1, _ = cpu.engine.hessian_vector(theta[:1], V, True, None)
    l2, g2, _ = gpu.engine.hessian_vector(theta[:1], V, True, None)
    np.testing.assert_allclose(l2, l1, rtol=1e-11)
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("net", [MLP([15, 10, 6, 3], activation="tanh", bias=True),
                                 MLP([15, 8, 15], activation="softplus", loss="mse")],
                         ids=["ce", "autoencoder"])
def test_zero_columns_dropped_on_cuda_equal_cpu(net, tmp_path):
    # the CUDA engine on the kept columns against the CPU engine reading every column
    from test_zero_columns import (dropped_weights, momentum_through_dropped_weights,
                                   zero_column_data)

    X, y, kept = zero_column_data(150, 15, seed=3)
    if net.loss == "mse":
        y = None
    cpu = Landscape(net, X, y, dtype="float64", drop_zero_columns=False)
    gpu = Landscape(net, X, y, dtype="float64", device="cuda", chunk=40)
    assert gpu.kept_columns == kept
    assert Landscape(net, X, y, dtype="float64", device="cuda",
                     drop_zero_columns=False).kept_columns == 15
    mask = dropped_weights(net, np.any(X != 0, axis=0) | np.signbit(X).any(axis=0))
    th = net.init(3, seed=1, dtype="float64")
    d = 0.1 * net.init(3, seed=2, dtype="float64")

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-13)

    (l1, g1), (l2, g2) = cpu.loss_and_grad(th), gpu.loss_and_grad(th)
    close(l2, l1)
    close(g2, g1)
    assert np.all(g2[:, mask] == 0.0)
    s = np.stack([np.arange(20) + 3 * p for p in range(3)])
    for a, b in zip(gpu.evaluate_each(th, s), cpu.evaluate_each(th, s)):
        close(a, b)
    lines, u = np.array([2, 0, 1], dtype=np.int64), np.array([0.5, -1.0, 2.0])
    close(gpu.engine.line_values(th, d, lines, u), cpu.engine.line_values(th, d, lines, u))
    index = np.random.default_rng(6).integers(0, 3, (5, 2)).astype(np.int32)
    coef = np.random.default_rng(7).random((5, 2))
    close(gpu.engine.evaluate_combination(th, index, coef),
          cpu.engine.evaluate_combination(th, index, coef))
    kw = dict(n_points=10, n_modes=3, steps=5, progress=False, optimizer="adam", refine=False)
    r1, r2 = losstopo.find_path(cpu, th[0], th[1], **kw), losstopo.find_path(gpu, th[0], th[1],
                                                                             **kw)
    assert r2.barrier == pytest.approx(r1.barrier, rel=1e-8)
    close(gpu.hessian_vector(th[0], d), cpu.hessian_vector(th[0], d))
    close(gpu.hessian_vector(th, d), cpu.hessian_vector(th, d))
    # SGD epochs on the device, and with velocities in the dropped weights (the generic
    # loop then runs): as on the CPU
    a, va = sgd_train(net, cpu, th, tmp_path, "cpu", momentum=0.9)
    b, vb = sgd_train(net, gpu, th, tmp_path, "gpu", momentum=0.9)
    assert_same_training(a, va, b, vb)
    assert np.array_equal(b.theta_final[:, mask], th[:, mask])
    ta, va = momentum_through_dropped_weights(cpu, net, th)
    tb, vb = momentum_through_dropped_weights(gpu, net, th)
    close(tb, ta)
    close(vb, va)
