"""TorchLandscape against the native engine (skipped without torch)."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape

torch = pytest.importorskip("torch", reason="PyTorch not installed (optional extra)")
from losstopo.torch_adapter import TorchLandscape, lenet, lstm  # noqa: E402


def pair(n=64, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    net = MLP([6, 5, 3], activation="tanh", bias=True)
    X, y = losstopo.datasets.synthetic(n, 6, 3, seed=seed, dtype="float64")
    return module, net, X, y


def test_matches_native_engine():
    module, net, X, y = pair()
    tl = TorchLandscape(module, X, y, dtype="float64", chunk=25)
    ls = Landscape(net, X, y, dtype="float64")
    theta = net.init(4, seed=1, dtype="float64")
    l1, g1 = tl.loss_and_grad(theta)
    l2, g2 = ls.loss_and_grad(theta)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tl.accuracy(theta), ls.accuracy(theta))
    s = np.stack([np.arange(10) + p for p in range(4)])
    le, ge = tl.evaluate_each(theta, s)
    for p in range(4):
        lp, gp = ls.loss_and_grad(theta[p], samples=s[p])
        assert le[p] == pytest.approx(lp, rel=1e-12)
        np.testing.assert_allclose(ge[p], gp, rtol=1e-10, atol=1e-14)


def test_hessian_vector_products_and_curvature_match_the_native_engine():
    module, net, X, y = pair()
    tl = TorchLandscape(module, X, y, dtype="float64", chunk=25)
    ls = Landscape(net, X, y, dtype="float64")
    theta = net.init(3, seed=1, dtype="float64")
    V = np.random.default_rng(0).normal(size=(3, net.num_params))
    np.testing.assert_allclose(tl.hessian_vector(theta[0], V), ls.hessian_vector(theta[0], V),
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(tl.hessian_vector(theta, V), ls.hessian_vector(theta, V),
                               rtol=1e-10, atol=1e-13)
    s = np.arange(5, 40)
    np.testing.assert_allclose(tl.hessian_vector(theta[1], V[0], samples=s),
                               ls.hessian_vector(theta[1], V[0], samples=s), rtol=1e-10,
                               atol=1e-13)
    from losstopo import curvature

    assert curvature.sharpness(tl, theta, tol=1e-8) == pytest.approx(
        curvature.sharpness(ls, theta, tol=1e-8), rel=1e-8)


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_trains_like_the_native_engine(method):
    module, net, X, y = pair(80)
    tl = TorchLandscape(module, X, y, dtype="float64")
    theta0 = net.init(2, seed=3, dtype="float64")
    kw = dict(method=method, runs=2, epochs=3, batch_size=16, dtype="float64",
              progress=False, theta0=theta0)
    a = losstopo.train(None, tl, **kw)
    b = losstopo.train(net, (X, y), **kw)
    np.testing.assert_allclose(a.theta_final, b.theta_final, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-10)
    assert a.net is None


def test_paths_on_a_torch_landscape():
    module, net, X, y = pair()
    tl = TorchLandscape(module, X, y, dtype="float64")
    a, b = tl.init(2, seed=0)
    r = losstopo.find_path(tl, a, b, n_points=8, n_modes=2, steps=3, progress=False)
    assert np.isfinite(r.barrier) and r.barrier <= r.straight_barrier + 1e-12


def test_paper_networks_parameter_counts():
    X = np.zeros((2, 784), dtype=np.float32)
    y = np.zeros(2, dtype=np.int64)
    assert TorchLandscape(lenet(), X, y).num_params == 61706
    assert TorchLandscape(lstm(), X, y).num_params == 15456


def test_bad_input():
    module, net, X, y = pair()
    with pytest.raises(ValueError, match="loss"):
        TorchLandscape(module, X, y, loss="hinge")
    with pytest.raises(ValueError, match="y"):
        TorchLandscape(module, X, None)
    tl = TorchLandscape(module, X, y)
    with pytest.raises(ValueError, match="theta"):
        tl.loss(np.zeros(3))


def test_unrolled_lstm_equals_torch_lstm():
    m = lstm()
    ref = torch.nn.LSTM(28, 48, batch_first=True)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(getattr(m.lstm, name))
    x = torch.rand(5, 28, 28)
    out, _ = ref(x)
    torch.testing.assert_close(m.lstm(x), out[:, -1], rtol=1e-5, atol=1e-6)


def test_lstm_permutation_is_the_authors():
    # The authors' LSTM (NN_arch.py in their repository) permutes the pixels by
    # torch.randperm(784, generator=torch.Generator().manual_seed(1234)); the digest
    # below was recorded from that expression. A torch release that draws randperm
    # differently fails here: the published LSTM solutions would then not evaluate.
    import hashlib

    from losstopo.torch_adapter import lstm_permutation

    p = lstm_permutation()
    assert np.array_equal(np.sort(p), np.arange(784))
    assert hashlib.sha256(p.astype("<i8").tobytes()).hexdigest() == (
        "896d818f9cc067047b73b5f1f343e237e69f303a1b138f8cc15c064d7399b275")
    assert not np.array_equal(lstm_permutation(0), p)


def test_lstm_equals_the_authors_module_on_flat_vectors():
    # Their forward: x[:, perm] -> (n, 28, 28) -> nn.LSTM -> last state -> Linear(48, 10,
    # bias=False); parameters in nn.Module order. A flat vector of theirs evaluates the
    # same in ours.
    class Authors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.perm = torch.randperm(784, generator=torch.Generator().manual_seed(1234))
            self.gru = torch.nn.LSTM(input_size=28, hidden_size=48, batch_first=True)
            self.fc = torch.nn.Linear(48, 10, bias=False)

        def forward(self, x):
            out, _ = self.gru(x[:, self.perm].view(x.size(0), 28, 28))
            return self.fc(out[:, -1, :])

    torch.manual_seed(0)
    ref = Authors().double()
    flat = torch.nn.utils.parameters_to_vector(ref.parameters()).detach().numpy()
    X = np.random.default_rng(0).random((40, 784))
    y = np.arange(40) % 10
    expected = torch.nn.functional.cross_entropy(ref(torch.from_numpy(X)),
                                                 torch.from_numpy(y)).item()
    tl = TorchLandscape(lstm(), X, y, dtype="float64")
    assert tl.num_params == flat.size
    assert tl.loss(flat) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="perm"):
        lstm(perm=np.zeros(784, dtype=int))


@pytest.mark.parametrize("activation", ["softplus", "relu"])
def test_lenet_matches_the_authors_layout(activation):
    F = torch.nn.functional
    act = F.softplus if activation == "softplus" else F.relu
    m = lenet(activation).double()
    flat = torch.nn.utils.parameters_to_vector(m.parameters()).detach()
    # The authors' forward written out, on their parameter order (conv1, conv2, fc1-3).
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
              (10, 84), (10,)]
    ps, k = [], 0
    for s in shapes:
        n = int(np.prod(s))
        ps.append(flat[k:k + n].reshape(s))
        k += n
    assert k == flat.numel() == 61706
    x = torch.rand(7, 784, dtype=torch.float64)
    h = F.avg_pool2d(act(F.conv2d(x.view(-1, 1, 28, 28), ps[0], ps[1], padding=2)), 2)
    h = F.avg_pool2d(act(F.conv2d(h, ps[2], ps[3])), 2).flatten(1)
    h = act(F.linear(act(F.linear(h, ps[4], ps[5])), ps[6], ps[7]))
    torch.testing.assert_close(m(x), F.linear(h, ps[8], ps[9]))
    with pytest.raises(ValueError, match="activation"):
        lenet("gelu")


def test_calls_are_cut_within_the_memory_budget():
    module, net, X, y = pair(n=90)
    theta = net.init(7, seed=2, dtype="float64")
    whole = TorchLandscape(module, X, y, dtype="float64")
    l0, g0 = whole.loss_and_grad(theta)
    assert whole._plan(7, 90) == (7, 90)  # a tiny network: one call
    # A budget of a few (vector, sample) pairs cuts over vectors and samples alike.
    tiny = TorchLandscape(module, X, y, dtype="float64",
                          memory_mb=5 * whole.sample_bytes() / 2**20)
    assert tiny._plan(7, 90) == (1, 5)
    l1, g1 = tiny.loss_and_grad(theta)
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tiny.loss(theta), l0, rtol=1e-12)
    np.testing.assert_allclose(tiny.accuracy(theta), whole.accuracy(theta))
    s = np.stack([np.arange(10) + p for p in range(7)])
    for a, b in zip(tiny.evaluate_each(theta, s), whole.evaluate_each(theta, s)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="memory_mb"):
        TorchLandscape(module, X, y, memory_mb=0)


def test_lenet_sample_bytes_are_its_activations():
    # LeNet keeps at least its conv activations per sample for the backward pass
    # (6 x 28 x 28 + 16 x 10 x 10 floats), and not absurdly more.
    X = np.zeros((8, 784), dtype=np.float32)
    tl = TorchLandscape(lenet(), X, np.zeros(8, dtype=np.int64))
    floor = 3 * 4 * (6 * 28 * 28 + 16 * 10 * 10)
    assert floor <= tl.sample_bytes() <= 20 * floor


def test_top_level_import():
    assert losstopo.TorchLandscape is TorchLandscape


def test_large_chunks_take_gradients_vector_by_vector():
    from losstopo import torch_adapter

    module, net, X, y = pair(n=2 * torch_adapter.PLAIN_GRAD_SAMPLES + 7)
    tl = TorchLandscape(module, X, y, dtype="float64", chunk=torch_adapter.PLAIN_GRAD_SAMPLES)
    ls = Landscape(net, X, y, dtype="float64")
    theta = net.init(3, seed=4, dtype="float64")
    calls = []
    real = tl._g
    tl._g = lambda *a: calls.append(1) or real(*a)
    l1, g1 = tl.loss_and_grad(theta)
    assert len(calls) == 3 * 3  # 3 vectors x 3 sample chunks, no vmap
    l2, g2 = ls.loss_and_grad(theta)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-14)


def test_paths_on_a_torch_landscape_measure_like_the_native_engine():
    # Same network both ways; the adapter locates the maximum on a coarser grid (its
    # measure_grid), which finds the same refined barrier here to 1e-6.
    from losstopo.paths import measure_grid

    module, net, X, y = pair()
    tl = TorchLandscape(module, X, y, dtype="float64")
    ls = Landscape(net, X, y, dtype="float64")
    assert measure_grid(tl)["factor"] < measure_grid(ls)["factor"] == 10
    a, b = net.init(2, seed=3, dtype="float64")
    kw = dict(n_points=10, n_modes=2, steps=3, lr=0.05, progress=False)
    rt, rn = losstopo.find_path(tl, a, b, **kw), losstopo.find_path(ls, a, b, **kw)
    np.testing.assert_allclose(rt.losses, rn.losses, rtol=1e-10)
    assert rt.barrier_refined == pytest.approx(rn.barrier_refined, rel=1e-6)
    assert rt.barrier_refined >= rt.barrier - 1e-12


def test_resume_files_are_keyed_by_the_data_and_the_module(tmp_path):
    """Path files and checkpoints of a TorchLandscape are bound to its data, module and
    dtype (they were keyed by repr() alone: another dataset of the same size, or another
    activation, resumed the first one's numbers)."""
    module, _, X, y = pair(40)
    X2, y2 = losstopo.datasets.synthetic(40, 6, 3, seed=9, dtype="float64")
    a = TorchLandscape(module, X, y, dtype="float64")
    assert TorchLandscape(module, X, y, dtype="float64").fingerprint == a.fingerprint
    b = TorchLandscape(module, X2, y2, dtype="float64")
    assert repr(a) == repr(b) and a.fingerprint != b.fingerprint
    relu = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    assert TorchLandscape(relu, X, y, dtype="float64").fingerprint != a.fingerprint
    thetas = a.init(3, seed=1)
    out = tmp_path / "paths.npz"
    kw = dict(pairs=1, steps=2, n_points=6, n_modes=2, progress=False)
    losstopo.barrier_matrix(a, thetas, out=out, **kw)
    with pytest.raises(ValueError, match="different configuration"):
        losstopo.barrier_matrix(b, thetas, out=out, **kw)
    ckpt = tmp_path / "ckpt.npz"
    train_kw = dict(method="sgd", runs=2, epochs=2, batch_size=8, dtype="float64",
                    progress=False, checkpoint=ckpt)
    losstopo.train(None, a, **train_kw)
    with pytest.raises(ValueError, match="checkpoint"):
        losstopo.train(None, b, **train_kw)


def test_the_adapter_checks_its_input_as_the_engine_does():
    module, _, X, y = pair(20)
    tl = TorchLandscape(module, X, y, dtype="float64")
    theta = tl.init(1)[0]
    bad_y = y.copy()
    bad_y[0] = -100  # torch's ignore_index: silently dropped before
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        TorchLandscape(module, X, bad_y, dtype="float64")
    for s in ([-1], np.ones(20, dtype=bool), [0.5, 1.5], []):
        with pytest.raises(ValueError, match="samples"):
            tl.loss(theta, samples=s)
    with pytest.raises(ValueError, match="samples"):
        tl.evaluate_each(tl.init(2), np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(TypeError, match="real"):
        TorchLandscape(module, X.astype(complex), y, dtype="float64")
    reg = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    t = X[:, 0].copy()
    with pytest.raises(ValueError, match=r"outputs' shape \(20, 1\)"):  # not broadcast
        TorchLandscape(reg, X, t, loss="mse", dtype="float64")
    TorchLandscape(reg, X, t[:, None], loss="mse", dtype="float64")  # the right shape
    t[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TorchLandscape(reg, X, t[:, None], loss="mse", dtype="float64")
    with pytest.raises(TypeError, match="nn.Module"):
        TorchLandscape(lambda x: x, X, y)

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.f = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.f(x), x

    with pytest.raises(TypeError, match="one tensor"):
        TorchLandscape(Pair(), X, y, dtype="float64")
    with pytest.raises(ValueError, match="no parameters"):
        TorchLandscape(torch.nn.Identity(), X, y)


def test_the_users_module_is_never_changed():
    module, _, X, y = pair(20)
    before = [p.detach().clone() for p in module.parameters()]
    tl = TorchLandscape(module, X, y, dtype="float64")  # module stays float32
    tl.init(2, seed=3)  # resets the landscape's own copy
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
    bn = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4),
                             torch.nn.Linear(4, 3))
    tb = TorchLandscape(bn, X, y, dtype="float64")
    stats = {k: v.clone() for k, v in tb.module.named_buffers()}
    tb.sample_bytes()  # a measurement: the running statistics stay as they were
    assert all(torch.equal(stats[k], v) for k, v in tb.module.named_buffers())


def test_threads_are_checked():
    module, _, X, y = pair(20)
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            TorchLandscape(module, X, y, threads=bad)
