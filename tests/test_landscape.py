"""The batched engine against an independent float64 NumPy reference."""

import itertools

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape
from losstopo._native import core

import reference


def make_data(net, n=97, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, net.sizes[0]))
    if net.loss == "cross_entropy":
        y = rng.integers(0, net.sizes[-1], n)
    elif net.sizes[-1] != net.sizes[0]:
        y = rng.random((n, net.sizes[-1]))  # regression targets
    else:
        y = None  # reconstruct the input
    return X, y


def nets():
    out = []
    for act, bias in itertools.product(losstopo.models.ACTIVATIONS, (True, False)):
        out.append(MLP([7, 5, 4], activation=act, bias=bias))
    for output, bias in itertools.product(("identity", "sigmoid"), (True, False)):
        out.append(MLP([6, 4, 3, 6], activation="softplus", bias=bias, output=output, loss="mse"))
        out.append(MLP([6, 4, 3], activation="tanh", bias=bias, output=output))
    out.append(MLP([9, 3], bias=True))  # a single layer
    out.append(MLP([9, 3], bias=False, output="sigmoid", loss="mse"))
    out.append(MLP([5, 8, 6, 4, 3, 2], activation=["relu", "tanh", "sigmoid", "softplus"]))
    out.append(MLP([12, 16, 16, 12], activation="relu", bias=False, output="sigmoid", loss="mse"))
    return out


NETS = nets()



def check_against_reference(ls, net, theta, X, y, loss, grad):
    """loss, grad (P,), (P, D) of ls at theta against the float64 NumPy reference; the
    loss alone and the accuracy too."""
    for p in range(len(theta)):
        rl, rg = reference.loss_and_grad(net, theta[p], X, y)
        assert loss[p] == pytest.approx(rl, rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(grad[p], rg, rtol=1e-9, atol=1e-13)
    np.testing.assert_array_equal(ls.loss(theta), loss)
    if net.loss == "cross_entropy":
        acc = ls.accuracy(theta)
        for p in range(len(theta)):
            assert acc[p] == pytest.approx(reference.accuracy(net, theta[p], X, y))

@pytest.mark.parametrize("net", NETS, ids=repr)
def test_float64_matches_reference(net):
    X, y = make_data(net)
    theta = net.init(3, seed=1, dtype="float64") * 3.0
    ls = Landscape(net, X, y, dtype="float64", chunk=16)
    loss, grad = ls.loss_and_grad(theta)
    assert loss.shape == (3,) and grad.shape == (3, net.num_params)
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    check_against_reference(ls, net, theta, X, y, loss, grad)


@pytest.mark.parametrize("net", NETS, ids=repr)
def test_float32_close_to_float64(net):
    X, y = make_data(net, n=130)
    theta = net.init(2, seed=2, dtype="float64")
    l64, g64 = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    l32, g32 = Landscape(net, X, y, dtype="float32").loss_and_grad(theta)
    assert l32.dtype == np.float32 and g32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    scale = np.abs(g64).max()
    np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("net", [NETS[2], NETS[12], NETS[-2], NETS[-1]], ids=repr)
def test_gradient_matches_central_differences(net):
    X, y = make_data(net, n=40)
    ls = Landscape(net, X, y, dtype="float64")
    theta = net.init(1, seed=3, dtype="float64")[0]
    _, g = ls.loss_and_grad(theta)
    rng = np.random.default_rng(0)
    h = 1e-6
    for i in rng.choice(net.num_params, size=min(25, net.num_params), replace=False):
        e = np.zeros_like(theta)
        e[i] = h
        fd = (ls.loss(theta + e) - ls.loss(theta - e)) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)
    # and along a random direction
    v = rng.standard_normal(theta.shape)
    fd = (ls.loss(theta + h * v) - ls.loss(theta - h * v)) / (2 * h)
    assert g @ v == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_equals_one_at_a_time(dtype):
    net = MLP([20, 9, 7, 4], activation="softplus")
    X, y = make_data(net, n=300)
    ls = Landscape(net, X, y, dtype=dtype)
    theta = net.init(6, seed=4, dtype=dtype)
    loss, grad = ls.loss_and_grad(theta)
    tol = 1e-6 if dtype == "float32" else 1e-13
    for p in range(6):
        lp, gp = ls.loss_and_grad(theta[p])
        assert np.ndim(lp) == 0 and gp.shape == (net.num_params,)
        assert lp == pytest.approx(loss[p], rel=tol)
        np.testing.assert_allclose(gp, grad[p], rtol=tol * 10, atol=tol * np.abs(grad).max())


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_independent_of_chunk_size(chunk):
    net = MLP([11, 6, 5], activation="tanh")
    X, y = make_data(net, n=257)
    theta = net.init(4, seed=5, dtype="float64")
    ref_l, ref_g = Landscape(net, X, y, dtype="float64", chunk=257).loss_and_grad(theta)
    l, g = Landscape(net, X, y, dtype="float64", chunk=chunk, threads=2).loss_and_grad(theta)
    np.testing.assert_allclose(l, ref_l, rtol=1e-13)
    np.testing.assert_allclose(g, ref_g, rtol=1e-11, atol=1e-15)


def test_deterministic_bits():
    net = losstopo.fcp()
    X, y = make_data(net, n=1500)
    ls = Landscape(net, X, y, threads=2)
    theta = net.init(5)
    l1, g1 = ls.loss_and_grad(theta)
    l2, g2 = ls.loss_and_grad(theta)
    assert np.array_equal(l1, l2) and np.array_equal(g1, g2)


def test_sample_subset_equals_subset_landscape():
    net = MLP([8, 6, 3], activation="relu")
    X, y = make_data(net, n=200)
    idx = np.random.default_rng(1).permutation(200)[:64]
    theta = net.init(3, dtype="float64")
    l, g = Landscape(net, X, y, dtype="float64").loss_and_grad(theta, samples=idx)
    l2, g2 = Landscape(net, X[idx], y[idx], dtype="float64").loss_and_grad(theta)
    np.testing.assert_allclose(l, l2, rtol=1e-13)
    np.testing.assert_allclose(g, g2, rtol=1e-11, atol=1e-15)


def test_paper_networks_parameter_counts():
    assert losstopo.fcp().num_params == 42200
    assert losstopo.autoencoder().num_params == 52224


def test_init_matches_pytorch_bounds():
    net = MLP([30, 20, 5], bias=True)
    theta = net.init(50, seed=0, dtype="float64")
    for (W, b), fan_in in zip(net.unflatten(theta[0]), (30, 20)):
        assert np.abs(W).max() <= 1 / np.sqrt(fan_in) and np.abs(b).max() <= 1 / np.sqrt(fan_in)
    (W1, _), _ = net.unflatten(np.abs(theta).max(axis=0))
    assert W1.max() > 0.95 / np.sqrt(30)
    assert not np.array_equal(net.init(1, seed=0), net.init(1, seed=1))
    np.testing.assert_array_equal(net.init(2, seed=7), net.init(2, seed=7))


def test_unflatten_flatten_roundtrip():
    net = MLP([4, 3, 2], bias=True)
    theta = np.arange(net.num_params, dtype=np.float64)
    layers = net.unflatten(theta)
    assert layers[0][0].shape == (3, 4) and layers[0][1].shape == (3,)
    assert layers[0][0][0, 1] == 1 and layers[0][1][0] == 12  # weight row-major, then bias
    np.testing.assert_array_equal(net.flatten(layers), theta)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.Softplus(), nn.Linear(8, 6), nn.ReLU(),
                          nn.Linear(6, 4)).double()
    net = MLP([10, 8, 6, 4], activation=["softplus", "relu"], bias=True)
    theta = nn.utils.parameters_to_vector(model.parameters()).detach().numpy().copy()
    X, y = make_data(net, n=50)
    out = model(torch.from_numpy(X))
    loss = nn.functional.cross_entropy(out, torch.from_numpy(y))
    loss.backward()
    tg = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
    l, g = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    assert l == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-14)
    # autoencoder with MSE against the input
    ae = nn.Sequential(nn.Linear(10, 4, bias=False), nn.Softplus(), nn.Linear(4, 10, bias=False),
                       nn.Sigmoid()).double()
    net = MLP([10, 4, 10], activation="softplus", bias=False, output="sigmoid", loss="mse")
    theta = nn.utils.parameters_to_vector(ae.parameters()).detach().numpy().copy()
    xt = torch.from_numpy(X)
    loss = nn.functional.mse_loss(ae(xt), xt)
    loss.backward()
    tg = torch.cat([p.grad.reshape(-1) for p in ae.parameters()]).numpy()
    l, g = Landscape(net, X, None, dtype="float64").loss_and_grad(theta)
    assert l == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_evaluate_each_gives_every_vector_its_own_samples(dtype):
    net = MLP([8, 6, 5, 3], activation="softplus", bias=True)
    X, y = make_data(net, n=120)
    ls = Landscape(net, X, y, dtype=dtype)
    theta = net.init(5, seed=2, dtype=dtype)
    rng = np.random.default_rng(3)
    samples = np.stack([rng.permutation(120)[:17] for _ in range(5)])
    loss, grad = ls.engine.evaluate_each(theta, samples, True)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for p in range(5):
        lp, gp = ls.loss_and_grad(theta[p], samples=samples[p])
        assert loss[p] == pytest.approx(lp, rel=tol)
        np.testing.assert_allclose(grad[p], gp, rtol=tol, atol=tol * np.abs(gp).max())


def lines_case(net):
    """A float64 landscape and five points on three lines x_l - u d_l (two repeated)."""
    X, y = make_data(net, n=150)
    ls = Landscape(net, X, y, dtype="float64", chunk=40)
    x = net.init(3, seed=1, dtype="float64")
    d = np.random.default_rng(2).standard_normal(x.shape)
    lines = np.array([0, 2, 1, 2, 0])
    u = np.array([0.0, 0.3, 0.05, 1.7, 2.0])
    return ls, X, y, x, d, lines, u


@pytest.mark.parametrize("net", [NETS[2], NETS[12], NETS[-1]], ids=repr)
def test_line_values_equal_full_evaluations(net):
    ls, X, y, x, d, lines, u = lines_case(net)
    got = ls.engine.line_values(x, d, lines, u)
    want, want_grad = ls.loss_and_grad(x[lines] - u[:, None] * d[lines])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the accepted points' gradients from the lines (no forward first-layer product)
    got, grad = ls.engine.line_values(x, d, lines, u, grad=True)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-13)


# ------------------------------------------------ the fused later layers (LOSSTOPO_FUSED)
FUSED_MODES = ["scalar", "avx2", "avx512"]  # a variant the CPU lacks runs a narrower one


def fused_nets():
    out = []
    for act, bias in itertools.product(losstopo.models.ACTIVATIONS, (True, False)):
        out.append(MLP([5, 7, 13, 33, 4], activation=act, bias=bias))
    for output, bias in itertools.product(("identity", "sigmoid"), (True, False)):
        out.append(MLP([6, 13, 7, 6], activation="softplus", bias=bias, output=output,
                       loss="mse"))
        out.append(MLP([6, 33, 3], activation="tanh", bias=bias, output=output))
    out.append(MLP([9, 3], bias=True))  # a single layer: no later layers
    out.append(MLP([5, 8, 6, 4, 3, 2], activation=["relu", "tanh", "sigmoid", "softplus"]))
    return out


FUSED_NETS = fused_nets()


@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("net", FUSED_NETS, ids=repr)
def test_fused_float64_matches_reference(net, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_FUSED", mode)
    X, y = make_data(net, n=101)  # not a multiple of the fused block (48 rows)
    theta = net.init(3, seed=1, dtype="float64") * 3.0
    ls = Landscape(net, X, y, dtype="float64", chunk=50)
    loss, grad = ls.loss_and_grad(theta)
    check_against_reference(ls, net, theta, X, y, loss, grad)


@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("net", FUSED_NETS, ids=repr)
def test_fused_float32_close_to_float64(net, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_FUSED", mode)
    X, y = make_data(net, n=130)
    theta = net.init(2, seed=2, dtype="float64")
    l64, g64 = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    l32, g32 = Landscape(net, X, y, dtype="float32").loss_and_grad(theta)
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-5 * np.abs(g64).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", [FUSED_NETS[2], FUSED_NETS[13], FUSED_NETS[-1]], ids=repr)
def test_fused_vector_equals_scalar_and_blas(net, dtype, monkeypatch):
    X, y = make_data(net, n=203)
    theta = net.init(4, seed=3, dtype=dtype)
    got = {}
    for mode in ["blas", "scalar", "auto"]:
        monkeypatch.setenv("LOSSTOPO_FUSED", mode)
        ls = Landscape(net, X, y, dtype=dtype, threads=2)
        got[mode] = ls.loss_and_grad(theta)
        l2, g2 = ls.loss_and_grad(theta)  # deterministic for a given thread count
        assert np.array_equal(got[mode][0], l2) and np.array_equal(got[mode][1], g2)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for mode in ["scalar", "auto"]:
        np.testing.assert_allclose(got[mode][0], got["blas"][0], rtol=tol)
        gmax = np.abs(got["blas"][1]).max()
        np.testing.assert_allclose(got[mode][1], got["blas"][1], rtol=0, atol=tol * gmax)


@pytest.mark.parametrize("mode", ["scalar", "auto"])
def test_fused_line_values_and_evaluate_each(mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_FUSED", mode)
    net = MLP([8, 13, 7, 3], activation="softplus", bias=True)
    ls, X, y, x, d, lines, u = lines_case(net)
    pts = x[lines] - u[:, None] * d[lines]
    got, grad = ls.engine.line_values(x, d, lines, u, grad=True)
    for k in range(len(lines)):
        rl, rg = reference.loss_and_grad(net, pts[k], X, y)
        assert got[k] == pytest.approx(rl, rel=1e-12)
        np.testing.assert_allclose(grad[k], rg, rtol=1e-9, atol=1e-13)
    samples = np.stack([np.random.default_rng(k).permutation(150)[:61] for k in range(3)])
    loss, grad = ls.engine.evaluate_each(x, samples, True)
    for p in range(3):
        rl, rg = reference.loss_and_grad(net, x[p], X[samples[p]], y[samples[p]])
        assert loss[p] == pytest.approx(rl, rel=1e-12)
        np.testing.assert_allclose(grad[p], rg, rtol=1e-9, atol=1e-13)


# ------------------------------ the first layer's vectorized row mixes (LOSSTOPO_SIMD)
SIMD_MODES = ["scalar", "avx2", "avx512"]  # a level the CPU lacks runs a narrower one
# hidden widths: narrower than any vector, one AVX-512 float vector, a vector and a
# part (the last vector overlaps), several vectors and a part
MIX_WIDTHS = [3, 16, 21, 50]


def mix_case(h1, dtype, n=133):
    net = MLP([11, h1, 7, 4], activation="softplus", bias=True)
    X, y = make_data(net, n=n, seed=h1)
    ls = Landscape(net, X, y, dtype=dtype, chunk=40)  # n not a multiple of the chunk
    rng = np.random.default_rng(h1)
    V = (net.init(5, seed=4) * 2.0).astype(dtype)
    index = rng.integers(0, 5, (6, 3)).astype(np.int32)
    coef = rng.standard_normal((6, 3)).astype(dtype)
    return net, ls, X, y, V, index, coef


@pytest.mark.parametrize("mode", SIMD_MODES)
@pytest.mark.parametrize("h1", MIX_WIDTHS)
def test_row_mixes_float64_match_reference(h1, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    net, ls, X, y, V, index, coef = mix_case(h1, "float64")
    points = np.einsum("pk,pkd->pd", coef, V[index])
    got = ls.engine.evaluate_combination(V, index, coef)
    for p in range(len(points)):
        assert got[p] == pytest.approx(reference.loss_and_grad(net, points[p], X, y)[0],
                                       rel=1e-12)
    # points on lines: their losses, and their gradients from the lines
    x, d = V[:3], V[3:5][[0, 1, 0]] - V[:3]
    lines, u = np.array([0, 2, 1, 2]), np.array([0.0, 0.4, -0.3, 1.1])
    loss, grad = ls.engine.line_values(x, d, lines, u, grad=True)
    for k in range(len(lines)):
        rl, rg = reference.loss_and_grad(net, x[lines[k]] - u[k] * d[lines[k]], X, y)
        assert loss[k] == pytest.approx(rl, rel=1e-12)
        np.testing.assert_allclose(grad[k], rg, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("h1", MIX_WIDTHS)
def test_row_mixes_path_gradient_matches_generic_in_every_mode(h1, monkeypatch):
    # the path objective's projected gradient: native (the deltas projected by a row
    # mix) against generic (every point's gradient, projected afterwards)
    net = MLP([9, h1, 5, 3], activation="relu", bias=False)
    X, y = losstopo.datasets.synthetic(87, 9, 3, seed=h1, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64", chunk=30)
    th = net.init(4, seed=5, dtype="float64")
    params = core.PathParams(n_modes=4, n_points=13, lam=0.1)
    C = 0.3 * np.random.default_rng(h1).standard_normal((2, 4, net.num_params))
    slow = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
    slow.use_generic_evaluation()
    v2, g2, e2 = slow.objective(C)
    for mode in SIMD_MODES:
        monkeypatch.setenv("LOSSTOPO_SIMD", mode)
        fast = core.PathBatchF64(ls.engine, th[:2], th[2:], params)
        v1, g1, e1 = fast.objective(C)
        np.testing.assert_allclose(e1, e2, rtol=1e-12)
        np.testing.assert_allclose(v1, v2, rtol=1e-12)
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("h1", MIX_WIDTHS)
def test_row_mixes_vector_equal_scalar(h1, dtype, monkeypatch):
    # the vector levels against the forced scalar fallback, and each deterministic
    net, ls, X, y, V, index, coef = mix_case(h1, dtype, n=211)
    x, d = V[:3], V[2:5] - V[:3]
    lines, u = np.array([0, 2, 1, 2]), np.array([0.0, 0.4, -0.3, 1.1]).astype(dtype)
    got = {}
    for mode in SIMD_MODES:
        monkeypatch.setenv("LOSSTOPO_SIMD", mode)
        runs = [(ls.engine.evaluate_combination(V, index, coef),)
                + tuple(ls.engine.line_values(x, d, lines, u, grad=True)) for _ in range(2)]
        for a, b in zip(*runs):
            assert np.array_equal(a, b)
        got[mode] = runs[0]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for mode in SIMD_MODES[1:]:
        for a, b in zip(got[mode], got["scalar"]):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol * np.abs(b).max())


# --------------------------- the float32 softmax cross-entropy, vectorized over rows
@pytest.mark.parametrize("mode", SIMD_MODES)
@pytest.mark.parametrize("k", [2, 10, 16, 17, 64, 65])  # 65: past the vectorized width
def test_softmax_cross_entropy_float32_close_to_float64(k, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    net = MLP([6, 9, k], activation="relu", bias=True)
    X, y = make_data(net, n=61)  # not a multiple of any vector width
    theta = net.init(3, seed=k, dtype="float64") * 3.0
    l64, g64 = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    ls = Landscape(net, X, y, dtype="float32")
    l32, g32 = ls.loss_and_grad(theta.astype(np.float32))
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-5 * np.abs(g64).max())
    assert np.array_equal(ls.loss(theta.astype(np.float32)), l32)  # with or without deltas
    np.testing.assert_allclose(ls.accuracy(theta.astype(np.float32)),
                               Landscape(net, X, y, dtype="float64").accuracy(theta), rtol=1e-6)


@pytest.mark.parametrize("mode", SIMD_MODES)
def test_softmax_cross_entropy_exact_logits(mode, monkeypatch):
    # Logits set exactly (inputs: unit vectors, so row i's logits are column i of W):
    # comparable ones, one dominant, values down into expf's underflow, a tie for the
    # maximum, every label position.
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    k = 12
    rng = np.random.default_rng(5)
    L = rng.uniform(-6, 2, (2 * k, k)).astype(np.float32)  # comparable exponentials
    L[4:8] = rng.uniform(-120, 40, (4, k))  # one dominant logit
    L[0] = 0.0
    L[1] = -200.0
    L[1, 3] = 0.0
    L[2, [4, 7]] = 50.0  # a tie: the first maximum is the prediction
    L[3] = np.linspace(-90, -85, k)  # around expf's smallest normal results
    X = np.zeros((2 * k, 2 * k), np.float32)
    X[np.arange(2 * k), np.arange(2 * k)] = 1.0
    y = np.arange(2 * k) % k
    net = MLP([2 * k, k], bias=False)
    theta = np.ascontiguousarray(L.T).reshape(1, -1)  # W[o, i] = L[i, o]
    ls = Landscape(net, X, y, dtype="float32")
    loss, grad = ls.loss_and_grad(theta)
    Ld = L.astype(np.float64)
    m = Ld.max(axis=1, keepdims=True)
    e = np.exp(Ld - m)
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(2 * k)
    want = np.mean(m[:, 0] + np.log(e.sum(axis=1)) - Ld[rows, y])
    assert loss[0] == pytest.approx(want, rel=1e-6)
    p[rows, y] -= 1.0
    np.testing.assert_allclose(grad[0].reshape(k, 2 * k), p.T / (2 * k), rtol=2e-6, atol=1e-9)
    assert ls.accuracy(theta)[0] == pytest.approx(np.mean(L.argmax(axis=1) == y))


# ------------- the float32 sigmoid and squared error, vectorized (LOSSTOPO_SIMD)
@pytest.mark.parametrize("mode", SIMD_MODES)
@pytest.mark.parametrize("net", [
    MLP([9, 21, 7, 9], activation="softplus", output="sigmoid", loss="mse", bias=True),
    MLP([6, 13, 35], activation="tanh", output="identity", loss="mse", bias=True),
    MLP([40, 8, 40], activation="relu", output="sigmoid", loss="mse", bias=False),
    MLP([9, 17, 5], activation="sigmoid", bias=False),  # widths past whole vectors
], ids=repr)
def test_sigmoid_and_squared_error_float32_close_to_float64(net, mode, monkeypatch):
    monkeypatch.setenv("LOSSTOPO_SIMD", mode)
    X, y = make_data(net, n=67)
    theta = net.init(3, seed=4, dtype="float64") * 4.0  # saturating sigmoids too
    l64, g64 = Landscape(net, X, y, dtype="float64").loss_and_grad(theta)
    ls = Landscape(net, X, y, dtype="float32")
    l32, g32 = ls.loss_and_grad(theta.astype(np.float32))
    np.testing.assert_allclose(l32, l64, rtol=2e-5)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=5e-5 * np.abs(g64).max())
    assert np.array_equal(ls.loss(theta.astype(np.float32)), l32)
