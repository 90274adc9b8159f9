"""TorchLandscape with BatchNorm, randomness, frozen parameters, buffers and tied weights.

The reference for batchnorm="data" is independent of the landscape's passes: the
module in training mode on all samples as one batch, in float64, with plain autograd
(which differentiates through the batch statistics)."""

import numpy as np
import pytest

import losstopo

torch = pytest.importorskip("torch", reason="PyTorch not installed (optional extra)")
from losstopo.torch_adapter import TorchLandscape  # noqa: E402

nn = torch.nn


def mlp_bn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 4),
                         nn.BatchNorm1d(4), nn.Softplus(), nn.Linear(4, 3))


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 4 * 4, 3)
        self.bn_out = nn.BatchNorm1d(3, affine=False)

    def forward(self, x):
        h = torch.tanh(self.bn(self.conv(x.reshape(-1, 1, 4, 4))))
        return self.bn_out(self.fc(h.flatten(1)))


def data(n=48, d=6, seed=0):
    return losstopo.datasets.synthetic(n, d, 3, seed=seed, dtype="float64")


def unflatten(tl, w):
    out, k = {}, 0
    for name, shape, size in zip(tl.names, tl.shapes, tl.sizes):
        out[name] = w[k:k + size].reshape(shape)
        k += size
    return out


def reference(tl, module, theta, X, y):
    """Loss and gradient with full-batch statistics: training mode, one batch, float64."""
    m = module.double().train()
    w = torch.tensor(np.asarray(theta, dtype=np.float64), requires_grad=True)
    out = torch.func.functional_call(m, unflatten(tl, w), (torch.from_numpy(X),))
    loss = nn.functional.cross_entropy(out, torch.from_numpy(y.astype(np.int64)))
    (g,) = torch.autograd.grad(loss, w)
    return loss.item(), g.numpy(), out.detach().numpy()


@pytest.mark.parametrize("make, d", [(mlp_bn, 6), (lambda seed=0: ConvBN(), 16)])
def test_batchnorm_is_the_full_batch_function_for_every_chunk(make, d):
    X, y = data(d=d)
    module = make()
    theta = TorchLandscape(module, X, y, dtype="float64").init(3, seed=2)
    ref = [reference(TorchLandscape(module, X, y, dtype="float64"), make(), t, X, y)
           for t in theta]
    for chunk, memory_mb in ((2048, 256), (7, 256), (10, 0.002), (1, 0.0005)):
        tl = TorchLandscape(module, X, y, dtype="float64", chunk=chunk, memory_mb=memory_mb)
        loss, grad = tl.loss_and_grad(theta)
        for p, (lr, gr, out) in enumerate(ref):
            assert loss[p] == pytest.approx(lr, rel=1e-12), (chunk, memory_mb)
            np.testing.assert_allclose(grad[p], gr, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(tl.loss(theta), loss, rtol=1e-12)
        acc = [np.mean(out.argmax(1) == y) for _, _, out in ref]
        np.testing.assert_allclose(tl.accuracy(theta), acc)
    # one vector alone gives what it gives among others
    assert tl.loss(theta[1]) == pytest.approx(loss[1], rel=1e-12)


def test_batchnorm_float32_agrees_with_float64():
    X, y = data()
    module = mlp_bn()
    t64 = TorchLandscape(module, X, y, dtype="float64")
    t32 = TorchLandscape(module, X.astype(np.float32), y, chunk=5)
    theta = t64.init(2, seed=3)
    l64, g64 = t64.loss_and_grad(theta)
    l32, g32 = t32.loss_and_grad(theta.astype(np.float32))
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


def test_batchnorm_gradient_and_hessian_match_finite_differences():
    X, y = data(n=40)
    tl = TorchLandscape(mlp_bn(), X, y, dtype="float64", chunk=9)
    theta = tl.init(1, seed=4)[0]
    v = np.random.default_rng(0).standard_normal(tl.num_params)
    e = 1e-5
    _, g = tl.loss_and_grad(theta)
    fd = (tl.loss(theta + e * v) - tl.loss(theta - e * v)) / (2 * e)
    assert fd == pytest.approx(g @ v, rel=1e-7)
    hv = tl.hessian_vector(theta, v)
    fd_h = (tl.loss_and_grad(theta + e * v)[1] - tl.loss_and_grad(theta - e * v)[1]) / (2 * e)
    np.testing.assert_allclose(hv, fd_h, rtol=1e-5, atol=1e-7)


def running_statistics_by_hand(module, X):
    """Each BatchNorm layer's running buffers set to its input's full-batch mean and
    biased variance, layer after layer, by hooks on a float64 forward in eval mode."""
    layers = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]

    def hook(m, args):
        x = args[0].detach()
        m.running_mean.copy_(x.mean(0))
        m.running_var.copy_(x.var(0, unbiased=False))

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    with torch.no_grad():
        module.eval()(torch.from_numpy(X))
    for h in handles:
        h.remove()
    return module


def test_a_point_between_two_solutions_uses_its_own_statistics():
    X, y = data()
    module = mlp_bn()
    tl = TorchLandscape(module, X, y, dtype="float64", chunk=11)
    a, b = tl.init(2, seed=5)
    mid = 0.5 * (a + b)
    m = mlp_bn().double()
    torch.nn.utils.vector_to_parameters(torch.from_numpy(mid), m.parameters())
    running_statistics_by_hand(m, X)
    with torch.no_grad():
        out = m.eval()(torch.from_numpy(X))
        want = nn.functional.cross_entropy(out, torch.from_numpy(y.astype(np.int64))).item()
    assert tl.loss(mid) == pytest.approx(want, rel=1e-12)
    # the module's own buffers (batchnorm="module") give another number
    own = TorchLandscape(module, X, y, dtype="float64", batchnorm="module")
    assert abs(own.loss(mid) - want) > 1e-3


def test_samples_subset_takes_the_subsets_statistics():
    X, y = data()
    module = mlp_bn()
    tl = TorchLandscape(module, X, y, dtype="float64", chunk=4)
    theta = tl.init(1, seed=6)[0]
    s = np.array([3, 17, 5, 40, 22, 9, 31, 8, 12, 1])
    lr, gr, _ = reference(tl, mlp_bn(), theta, X[s], y[s])
    loss, grad = tl.loss_and_grad(theta, samples=s)
    assert loss == pytest.approx(lr, rel=1e-12)
    np.testing.assert_allclose(grad, gr, rtol=1e-9, atol=1e-12)
    # SGD's minibatches: each vector with its own minibatch's statistics
    le, ge = tl.evaluate_each(np.stack([theta, theta]), np.stack([s, s[::-1]]))
    np.testing.assert_allclose(le, [lr, lr], rtol=1e-12)
    np.testing.assert_allclose(ge[1], gr, rtol=1e-9, atol=1e-12)


def test_module_mode_is_the_modules_eval_forward():
    X, y = data()
    module = mlp_bn()
    with torch.no_grad():  # running statistics of its own, not the data's
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    tl = TorchLandscape(module, X, y, dtype="float64", batchnorm="module")
    theta = tl.init(1, seed=7)[0]
    m = mlp_bn().double()
    m.load_state_dict(module.state_dict())
    torch.nn.utils.vector_to_parameters(torch.from_numpy(theta), m.parameters())
    with torch.no_grad():
        out = m.eval()(torch.from_numpy(X))
    want = nn.functional.cross_entropy(out, torch.from_numpy(y.astype(np.int64))).item()
    assert tl.loss(theta) == pytest.approx(want, rel=1e-12)
    assert tl.fingerprint != TorchLandscape(module, X, y, dtype="float64").fingerprint


def test_batchnorm_bad_setups_are_named():
    X, y = data()
    with pytest.raises(ValueError, match="batchnorm: expected one of"):
        TorchLandscape(mlp_bn(), X, y, batchnorm="running")
    untracked = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4, track_running_stats=False),
                              nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"'module'.*1 keeps no running statistics"):
        TorchLandscape(untracked, X, y, batchnorm="module")
    assert np.isfinite(TorchLandscape(untracked, X, y).loss(
        TorchLandscape(untracked, X, y).init(1)[0]))

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn, self.out = nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)

        def forward(self, x):
            return self.out(self.bn(torch.tanh(self.bn(self.fc(x)))))

    tl = TorchLandscape(Twice(), X, y)
    with pytest.raises(ValueError, match="bn: this BatchNorm layer is called more than once"):
        tl.loss(tl.init(1)[0])


def test_dropout_is_refused_in_training_mode_and_evaluated_in_eval_mode():
    X, y = data()
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"layer '2' \(Dropout, p=0.3\).*module.eval\(\)"):
        TorchLandscape(module.train(), X, y)
    tl = TorchLandscape(module.train(), X, y, dtype="float64", randomness="eval")
    assert module.training  # the user's module is left as it was
    theta = tl.init(1, seed=1)[0]
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)).double()
    torch.nn.utils.vector_to_parameters(torch.from_numpy(theta), m.parameters())
    with torch.no_grad():
        out = m.eval()(torch.from_numpy(X))
    want = nn.functional.cross_entropy(out, torch.from_numpy(y.astype(np.int64))).item()
    assert tl.loss(theta) == pytest.approx(want, rel=1e-12)
    assert TorchLandscape(module.eval(), X, y, dtype="float64").loss(theta) == pytest.approx(
        want, rel=1e-12)
    with pytest.raises(ValueError, match="randomness: expected one of"):
        TorchLandscape(module, X, y, randomness="ignore")


def test_a_random_operation_in_forward_gets_a_named_error():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(x + 0.1 * torch.randn_like(x))

    X, y = data()
    with pytest.raises(ValueError, match="draws random numbers in eval mode"):
        TorchLandscape(Noisy().eval(), X, y)


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 5)
        self.embed.requires_grad_(False)
        self.fc = nn.Linear(5, 3)
        self.register_buffer("scale", torch.full((5,), 0.5))

    def forward(self, x):
        return self.fc(torch.tanh(self.embed(x)) * self.scale)


def test_frozen_parameters_and_buffers_are_fixed_or_part_of_theta():
    X, y = data()
    module = Frozen()
    fixed = TorchLandscape(module, X, y, dtype="float64")
    assert fixed.names == ["fc.weight", "fc.bias"] and fixed.num_params == 18
    full = TorchLandscape(module, X, y, dtype="float64", frozen="theta", buffers="theta")
    assert full.names == ["embed.weight", "embed.bias", "fc.weight", "fc.bias", "scale"]
    theta = fixed.init(1, seed=2)[0]
    # the fixed landscape holds the module's own values where the full one takes theta
    want = np.concatenate([module.embed.weight.detach().numpy().ravel(),
                           module.embed.bias.detach().numpy().ravel(), theta,
                           np.full(5, 0.5)])
    lf, gf = fixed.loss_and_grad(theta)
    lt, gt = full.loss_and_grad(want)
    assert lf == pytest.approx(lt, rel=1e-12)
    np.testing.assert_allclose(gt[35:53], gf, rtol=1e-12)
    assert np.abs(gt[:35]).max() > 0 and np.abs(gt[53:]).max() > 0  # they move the loss
    with pytest.raises(ValueError, match="frozen: expected one of"):
        TorchLandscape(module, X, y, frozen="yes")


def test_tied_parameters_appear_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(6, 6, bias=False)
            self.dec = nn.Linear(6, 6, bias=False)
            self.dec.weight = self.enc.weight
            self.out = nn.Linear(6, 3)

        def forward(self, x):
            return self.out(torch.tanh(self.dec(torch.tanh(self.enc(x)))))

    X, y = data()
    tl = TorchLandscape(Tied(), X, y, dtype="float64")
    assert tl.names == ["enc.weight", "out.weight", "out.bias"] and tl.num_params == 57
    theta = tl.init(1, seed=3)[0]
    _, g = tl.loss_and_grad(theta)
    v = np.random.default_rng(1).standard_normal(tl.num_params)
    e = 1e-6
    fd = (tl.loss(theta + e * v) - tl.loss(theta - e * v)) / (2 * e)
    assert fd == pytest.approx(g @ v, rel=1e-6)  # both uses of the tied tensor move


def test_init_leaves_the_copys_buffers_as_they_were():
    X, y = data()
    module = mlp_bn()
    with torch.no_grad():
        module[1].running_mean.fill_(0.25)
    tl = TorchLandscape(module, X, y, dtype="float64", batchnorm="module")
    before = tl.fingerprint
    tl.init(2)
    assert float(tl.module[1].running_mean[0]) == 0.25
    assert tl._fingerprint() == before


def test_compiled_passes_equal_the_eager_ones():
    X, y = data(n=40)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    eager = TorchLandscape(module, X, y, chunk=16)
    comp = TorchLandscape(module, X, y, chunk=16, compile=True)
    theta = eager.init(3, seed=1)
    le, ge = eager.loss_and_grad(theta)
    lc, gc = comp.loss_and_grad(theta)
    np.testing.assert_allclose(lc, le, rtol=1e-5)
    np.testing.assert_allclose(gc, ge, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="compile: expected True or False"):
        TorchLandscape(module, X, y, compile="yes")


def test_random_draws_outside_dropout_modules_are_refused():
    class FunctionalDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(6, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.out(nn.functional.dropout(self.fc(x), 0.3, self.training))

    X, y = data()
    module = FunctionalDropout().train()
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match="draws random numbers in training mode"):
        TorchLandscape(module, X, y, chunk=4096)
    assert torch.equal(state, torch.get_rng_state())  # the generator is put back
    with pytest.raises(ValueError, match="draws random numbers in training mode"):
        TorchLandscape(nn.Sequential(nn.Linear(6, 4), nn.RReLU(), nn.Linear(4, 3)), X, y)
    tl = TorchLandscape(FunctionalDropout().train(), X, y, randomness="eval")
    theta = tl.init(1)[0]
    assert tl.loss_and_grad(theta)[0] == tl.loss_and_grad(theta)[0]


def test_init_draws_a_top_level_layer_too():
    X, y = data()
    tl = TorchLandscape(nn.Linear(6, 3), X, y)
    theta = tl.init(3, seed=1)
    assert not np.array_equal(theta[0], theta[1])
