"""Permutation alignment of torch modules: specs derived from the module, planted
permutations recovered, the function unchanged, and unsupported modules named."""

import numpy as np
import pytest

import losstopo

torch = pytest.importorskip("torch", reason="PyTorch not installed (optional extra)")
from losstopo.align import align, align_to_common, permute  # noqa: E402
from losstopo.torch_adapter import TorchLandscape, lenet, lstm  # noqa: E402
from losstopo.torch_align import spec_of  # noqa: E402

nn = torch.nn


def images(n=24, seed=0):
    return losstopo.datasets.synthetic(n, 784, 10, seed=seed, dtype="float64")


def planted(tl, seed=1):
    rng = np.random.default_rng(seed)
    return {g: rng.permutation(n) for g, n in spec_of(tl).groups.items()}


def unchanged(tl, a, b):
    la, ga = tl.loss_and_grad(a)
    lb, gb = tl.loss_and_grad(b)
    assert lb == pytest.approx(la, abs=1e-6)
    assert np.linalg.norm(gb) == pytest.approx(np.linalg.norm(ga), abs=1e-6)
    assert tl.accuracy(b) == pytest.approx(tl.accuracy(a), abs=1e-6)


@pytest.mark.parametrize("make, groups", [
    (lenet, {"features.0": 6, "features.3": 16, "classifier.1": 120, "classifier.3": 84}),
    (lstm, {"lstm": 48})])
def test_the_papers_networks_recover_a_planted_permutation(make, groups):
    X, y = images()
    tl = TorchLandscape(make(), X, y, dtype="float64")
    assert spec_of(tl).groups == groups
    a, other = tl.init(2, seed=3)
    perms = planted(tl)
    b = permute(tl, a, perms)
    assert np.linalg.norm(b - a) > 1.0
    unchanged(tl, a, b)
    al = align(tl, a, b)
    np.testing.assert_array_equal(al.theta, a)  # recovered exactly
    assert al.distance_after == 0.0
    for g, p in perms.items():  # the inverse of what was planted
        np.testing.assert_array_equal(p[al.perms[g]], np.arange(len(p)))
    # independent solutions come closer, and stay the same function
    al2 = align(tl, a, other)
    assert al2.distance_after < al2.distance_before
    unchanged(tl, other, al2.theta)


def test_a_bare_module_aligns_with_example_inputs():
    X, _ = images(8)
    module = lenet()
    tl = TorchLandscape(module, X, np.zeros(8, dtype=np.int64), dtype="float64")
    a, b = tl.init(2, seed=4)
    al = align(module, a, np.stack([a, b]), example=X)
    assert al.theta.shape == (2, tl.num_params) and al.distance_after[0] == 0.0
    np.testing.assert_allclose(al.theta[1], align(tl, a, b).theta)
    with pytest.raises(ValueError, match="example= inputs"):
        align(module, a, b)
    common = align_to_common(tl, np.stack([a, b, a]))
    np.testing.assert_array_equal(common.theta[2], a)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 5)
        self.norm = nn.LayerNorm(5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = h + torch.tanh(self.fc2(h))
        h = self.norm(h + self.fc3(h))
        return self.out(h)


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2 = nn.Conv1d(4, 5, 3)  # over rows after a mean over columns
        self.fc = nn.Linear(5 * 2, 3)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x.reshape(-1, 1, 4, 4))))
        h = torch.tanh(self.conv2(h.mean(dim=3)))
        return self.fc(torch.flatten(h, 1))


class TorchLSTM(nn.Module):
    def __init__(self, cell=nn.LSTM):
        super().__init__()
        self.rnn = cell(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(-1, 4, 4))
        return self.fc(out[:, -1])


@pytest.mark.parametrize("make, groups", [
    (Residual, {"fc1": 5}), (ConvBN, {"conv1": 4, "conv2": 5}),
    (TorchLSTM, {"rnn": 6}), (lambda: TorchLSTM(nn.GRU), {"rnn": 6})])
def test_residuals_batchnorm_and_torch_recurrences(make, groups):
    X, y = losstopo.datasets.synthetic(20, 16 if make is not Residual else 6, 3, seed=2,
                                       dtype="float64")
    tl = TorchLandscape(make(), X, y, dtype="float64")
    spec = spec_of(tl)
    assert spec.groups == groups
    a = tl.init(1, seed=5)[0]
    b = permute(tl, a, planted(tl, seed=7))
    assert not np.array_equal(a, b)
    # (the torch LSTM and GRU have no vmap rule: their loss is checked one vector
    # through the module's forward)
    with torch.no_grad():
        fa = tl._forward(torch.from_numpy(a), tl.X).numpy()
        fb = tl._forward(torch.from_numpy(b), tl.X).numpy()
    np.testing.assert_allclose(fb, fa, atol=1e-10)
    np.testing.assert_array_equal(align(tl, a, b).theta, a)


def test_unsupported_operations_are_named():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(6, 4), nn.Linear(8, 3)

        def forward(self, x):
            h = self.fc(x)
            return self.out(torch.cat([h, h * 2], dim=1))

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.emb = nn.Linear(6, 4), nn.Embedding(4, 3)

        def forward(self, x):
            return self.emb(x[:, 0].long().clamp(0, 3)) + self.fc(x)[:, :3]

    X, y = losstopo.datasets.synthetic(10, 6, 3, seed=0, dtype="float64")
    with pytest.raises(ValueError, match=r"unsupported operation call_function cat at 'cat'"):
        spec_of(TorchLandscape(Cat(), X, y))
    with pytest.raises(ValueError, match=r"unsupported operation call_module Embedding"):
        spec_of(TorchLandscape(Embed(), X, y))
    with pytest.raises(TypeError, match="an MLP, a torch module or a TorchLandscape"):
        align("net", np.zeros(3), np.zeros(3))


def test_fixed_tensors_hold_their_groups():
    """A frozen layer cannot be permuted: the groups it touches stay where they are."""
    class Part(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(6, 5), nn.Linear(5, 4), nn.Linear(4, 3)
            self.fc2.requires_grad_(False)

        def forward(self, x):
            return self.out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

    X, y = losstopo.datasets.synthetic(10, 6, 3, seed=0, dtype="float64")
    spec = spec_of(TorchLandscape(Part(), X, y, dtype="float64"))
    assert spec.groups == {} and set(spec.fixed) >= {"fc1", "fc2"}


class Classic(nn.Module):
    """The shape of PyTorch's MNIST example: functional pooling, log-softmax output, a
    parameter-free reshaping module on the input and a max over an axis."""

    def __init__(self):
        super().__init__()
        self.unflatten = nn.Unflatten(1, (1, 4, 4))
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 2, 3)

    def forward(self, x):
        h = nn.functional.max_pool2d(torch.relu(self.conv1(self.unflatten(x))), 2)
        h = torch.tanh(self.conv2(h))
        h = torch.max(h, dim=3)[0] + h.max(dim=3).values + h.sum(axis=3)
        return nn.functional.log_softmax(self.fc(torch.flatten(h, 1)), dim=1)


def test_functional_pooling_softmax_and_reductions_align():
    X, y = losstopo.datasets.synthetic(20, 16, 3, seed=2, dtype="float64")
    tl = TorchLandscape(Classic(), X, y, dtype="float64")
    assert spec_of(tl).groups == {"conv1": 4, "conv2": 5}
    a = tl.init(1, seed=5)[0]
    b = permute(tl, a, planted(tl, seed=7))
    unchanged(tl, a, b)
    np.testing.assert_array_equal(align(tl, a, b).theta, a)
    with pytest.raises(ValueError, match="permute takes one vector"):
        permute(tl, np.stack([a, a]), planted(tl))
