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
