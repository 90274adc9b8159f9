"""Bad input raises a clear exception naming the argument."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape

NET = MLP([4, 3, 2], activation="relu")
X = np.random.default_rng(0).random((10, 4))
Y = np.arange(10) % 2


def landscape():
    return Landscape(NET, X, Y)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(sizes=[4]), ValueError, "sizes"),
        (dict(sizes=[4, 0, 2]), ValueError, "sizes"),
        (dict(sizes=[4, 2.5, 2]), ValueError, "sizes"),
        (dict(sizes=[4, 3, 2], activation="gelu"), ValueError, "activation"),
        (dict(sizes=[4, 3, 3, 2], activation=["relu"]), ValueError, "activation"),
        (dict(sizes=[4, 3, 2], output="softmax"), ValueError, "output"),
        (dict(sizes=[4, 3, 2], loss="hinge"), ValueError, "loss"),
        (dict(sizes=[4, 3, 1]), ValueError, "cross_entropy"),
    ],
)
def test_bad_mlp(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MLP(**kwargs)


@pytest.mark.parametrize(
    "X, y, exc, match",
    [
        (X[:, :3], Y, ValueError, "X"),
        (X[0], Y, ValueError, "X"),
        (np.where(X > 0.5, np.nan, X), Y, ValueError, "NaN"),
        (np.full_like(X, np.inf), Y, ValueError, "X"),
        (X.astype(complex), Y, TypeError, "X"),
        (X[:0], Y[:0], ValueError, "X"),
        (X, None, ValueError, "y"),
        (X, Y[:5], ValueError, "y"),
        (X, Y + 1, ValueError, "labels must lie"),
        (X, Y - 1, ValueError, "labels must lie"),
        (X, Y.astype(float), TypeError, "y"),
        (X, Y.astype(bool), TypeError, "y"),
    ],
)
def test_bad_data(X, y, exc, match):
    with pytest.raises(exc, match=match):
        Landscape(NET, X, y)


def test_bad_landscape_options():
    with pytest.raises(TypeError, match="dtype"):
        Landscape(NET, X, Y, dtype="float16")
    with pytest.raises(ValueError, match="threads"):
        Landscape(NET, X, Y, threads=0)
    with pytest.raises(ValueError, match=r"threads: expected an int in \[1, 1024\]"):
        Landscape(NET, X, Y, threads=10**7)  # bounded: each thread holds workspaces
    ls = Landscape(NET, X, Y, threads=2)
    with pytest.raises(ValueError, match="threads"):
        ls.threads = 10**7
    with pytest.raises(ValueError, match=r"threads: must lie in \[0, 1024\]"):
        ls.engine.threads = 5000  # the core's own check, for callers of the engine
    assert ls.threads == 2
    with pytest.raises(ValueError, match="chunk"):
        Landscape(NET, X, Y, chunk=-3)
    with pytest.raises(ValueError, match="device"):
        Landscape(NET, X, Y, device="tpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        if losstopo.cuda_available():
            raise RuntimeError("CUDA present: nothing to check")
        Landscape(NET, X, Y, device="cuda")
    with pytest.raises(TypeError, match="net"):
        Landscape("fcp", X, Y)
    ae = MLP([4, 3, 5], loss="mse")
    with pytest.raises(ValueError, match="sizes"):
        Landscape(ae, X, None)
    with pytest.raises(ValueError, match="y"):
        Landscape(ae, X, np.zeros((10, 4)))


@pytest.mark.parametrize(
    "theta, exc, match",
    [
        (np.zeros(NET.num_params + 1), ValueError, "theta"),
        (np.zeros((2, NET.num_params - 1)), ValueError, "theta"),
        (np.zeros((2, 2, NET.num_params)), ValueError, "theta"),
        (np.zeros((0, NET.num_params)), ValueError, "theta"),
        (np.full(NET.num_params, np.nan), ValueError, "NaN"),
        (np.zeros(NET.num_params, dtype=complex), TypeError, "theta"),
        (np.array(["a"] * NET.num_params), TypeError, "theta"),
    ],
)
def test_bad_theta(theta, exc, match):
    ls = landscape()
    for method in (ls.loss, ls.loss_and_grad, ls.accuracy):
        with pytest.raises(exc, match=match):
            method(theta)


def test_bad_samples_and_accuracy_on_regression():
    ls = landscape()
    theta = NET.init(1)[0]
    for s in ([10], [-1], [], [[0, 1]], [0.5]):
        with pytest.raises(ValueError, match="samples"):
            ls.loss(theta, samples=np.asarray(s))
    ae = Landscape(MLP([4, 3, 4], loss="mse"), X)
    with pytest.raises(ValueError, match="accuracy"):
        ae.accuracy(ae.net.init(1)[0])


def test_compiled_layer_rejects_bad_shapes_without_crashing():
    from losstopo._native import core

    eng = core.LandscapeF64([4, 3, 2], ["relu"], "identity", True, "cross_entropy", X,
                            Y.astype(np.int32))
    with pytest.raises(ValueError, match="theta"):
        eng.evaluate(np.zeros((2, 5)), True)
    with pytest.raises(ValueError, match="label"):
        core.LandscapeF64([4, 3, 2], ["relu"], "identity", True, "cross_entropy", X,
                          (Y + 5).astype(np.int32))
    with pytest.raises(ValueError, match="samples"):
        eng.evaluate(np.zeros((1, NET.num_params)), False, False, np.array([100]))


def test_smaller_gaps_give_clear_errors():
    from losstopo import KernelPCA, barrier_matrix, find_path, minimize, train
    from losstopo.analytic import toy_gaussians

    toy = toy_gaussians()
    a, b = toy.endpoints
    with pytest.raises(TypeError, match="real numbers"):
        KernelPCA(2).fit(np.ones((4, 3)) + 1j)
    with pytest.raises(ValueError, match="D >= 1"):
        KernelPCA(1).fit(np.ones((4, 0)))
    for bad in (np.nan, np.inf, -1.0):
        with pytest.raises(ValueError, match="init_scale"):
            find_path(toy, a, b, steps=1, init_scale=bad, progress=False)
    with pytest.raises(ValueError, match="n_points"):
        find_path(toy, a, b, steps=1, n_points=2**40, progress=False)
    with pytest.raises(ValueError, match="pairs: no pairs"):
        barrier_matrix(toy, np.stack([a, b, a + b]), pairs=np.zeros((0, 2), dtype=int),
                       progress=False)
    with pytest.raises(ValueError, match="golden_init"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), options=dict(golden_init=-1.0))
    with pytest.raises(ValueError, match="wolfe_c2"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), line_search="strong_wolfe",
                 options=dict(wolfe_c1=0.5, wolfe_c2=0.4))
    for seed in (1.5, -1, 2**70):
        with pytest.raises(ValueError, match="seed"):
            train(NET, (X, Y), epochs=1, seed=seed, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(NET, (X, Y), epochs=2**40, progress=False)
    with pytest.raises(ValueError, match="runs"):
        train(NET, (X, Y), epochs=1, runs=2**40, progress=False)
    with pytest.raises(ValueError, match="chunk"):
        Landscape(NET, X, Y, chunk=2**70)


def test_many_solutions_draw_pairs_without_listing_them_all():
    from losstopo.paths import choose_pairs

    idx = choose_pairs(5, 100_000, seed=3)  # 5e9 possible pairs
    assert idx.shape == (5, 2) and (idx[:, 0] < idx[:, 1]).all()
    assert len({tuple(p) for p in idx.tolist()}) == 5
    np.testing.assert_array_equal(idx, choose_pairs(5, 100_000, seed=3))  # reproducible
    np.testing.assert_array_equal(choose_pairs(3, 10, seed=1), choose_pairs(3, 10, seed=1))


def test_settings_errors_name_the_field_that_was_set():
    """The core's structs name their own fields (a C++ caller set LBFGSParams.golden.init);
    through minimize's options the same rule reaches the caller under the key it set."""
    from losstopo._native import core
    from losstopo.optimize import minimize, option_fields

    p = core.LBFGSParams()
    p.golden.init = -1.0
    with pytest.raises(ValueError, match=r"^golden\.init: must be positive, got -1"):
        p.validate()
    p = core.LBFGSParams()
    p.wolfe.c1, p.wolfe.c2 = 0.5, 0.4
    with pytest.raises(ValueError, match=r"^wolfe\.c2: must be in \(wolfe\.c1, 1\)"):
        p.validate()
    with pytest.raises(ValueError, match=r"^golden_init: must be positive"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), options=dict(golden_init=-1.0))
    with pytest.raises(ValueError, match=r"^wolfe_c2: must be in \(wolfe_c1, 1\)"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), line_search="strong_wolfe",
                 options=dict(wolfe_c1=0.5, wolfe_c2=0.4))
    # every field of the line searches' structs is an option, none written by hand
    fields = option_fields()
    assert fields["golden_max_evals"] == "golden.max_evals"
    assert fields["wolfe_max_step_factor"] == "wolfe.max_step_factor"
    with pytest.raises(ValueError, match="wolfe_max_step_factor"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), line_search="strong_wolfe",
                 options=dict(wolfe_max_step_factor=0.5))
    with pytest.raises(TypeError, match="golden_init"):
        minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), options=dict(golden_init="big"))


CALLBACK_FAULTS = r"""
import numpy as np, losstopo

class Raises:
    def __call__(self, X): return (X**2).sum(1), 2*X
    def loss(self, X): raise ValueError("boom")

class WrongShape:
    def __call__(self, X): return (X**2).sum(1), 2*X
    def loss(self, X): return np.zeros(len(X) + 1)

class Interrupted:
    def __call__(self, X): raise KeyboardInterrupt

ends = np.zeros(2), np.ones(2)
for energy, expected in ((Raises(), ValueError), (WrongShape(), ValueError),
                         (Interrupted(), KeyboardInterrupt)):
    for call in (
        lambda: losstopo.find_path(energy, *ends, n_points=5, steps=2, progress=False),
        lambda: losstopo.barrier_matrix(energy, np.stack([*ends, np.full(2, 2.0)]), pairs=2,
                                        steps=2, n_points=5, progress=False),
        lambda: losstopo.minimize(energy, np.ones(2), max_iter=3),
    ):
        try:
            call()
        except expected:
            print("raised", type(energy).__name__, expected.__name__)
        else:
            raise SystemExit(f"{type(energy).__name__}: no {expected.__name__}")
print("survived")
"""


def test_a_failing_python_callback_raises_and_never_crashes():
    """A landscape's Python method that raises, returns the wrong shape or is
    interrupted while a path is set up (or an optimizer runs) reaches the caller as its
    exception; the interpreter lives on (it crashed with SIGSEGV when the callback's
    objects were freed without the GIL during the unwinding)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", CALLBACK_FAULTS], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.count("raised") == 9 and "survived" in r.stdout


TORCH_INTERRUPT = r"""
import numpy as np, torch, losstopo
from losstopo.torch_adapter import TorchLandscape, lenet, lstm

rng = np.random.default_rng(0)
X = rng.random((16, 784), dtype=np.float32)
y = rng.integers(0, 10, 16)
for make in (lenet, lstm):
    module = make()
    calls = [0]

    def pre_hook(mod, inputs):  # Ctrl-C after the path has started its steps
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt

    ls = TorchLandscape(module, X, y)
    ls.module.register_forward_pre_hook(pre_hook)
    D = ls.num_params
    a = (0.01 * rng.standard_normal(D)).astype(np.float32)
    try:
        losstopo.find_path(ls, a, a + 0.01, n_points=4, n_modes=2, steps=3, progress=False)
    except KeyboardInterrupt:
        print("interrupted", make.__name__)
print("survived")
"""


def test_ctrl_c_during_a_torch_path_raises_keyboard_interrupt():
    """Ctrl-C while the study's LeNet or LSTM path runs (the core calling the torch
    module back) reaches the caller as KeyboardInterrupt; it segfaulted before."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", TORCH_INTERRUPT], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.count("interrupted") == 2 and "survived" in r.stdout, r.stdout


def test_a_path_whose_start_overflows_is_refused():
    """init_scale=1e30 on a float32 network: the initial curve's energy is not finite;
    it returned the straight line with a NaN history."""
    X, y = losstopo.datasets.synthetic(60, 4, 3, seed=1)
    net = MLP([4, 5, 3])
    ls = Landscape(net, X, y)
    a = np.random.default_rng(0).normal(size=net.num_params).astype(np.float32)
    with pytest.raises(ValueError, match="init_scale=1e"):
        losstopo.find_path(ls, a, a + 1, n_points=5, steps=3, progress=False,
                           init_scale=1e30)
    with pytest.raises(ValueError, match="init_scale=1e"):
        losstopo.barrier_matrix(ls, np.stack([a, a + 1]), pairs=1, n_points=5, steps=3,
                                progress=False, init_scale=1e30)
    ok = losstopo.find_path(ls, a, a + 1, n_points=5, steps=3, progress=False,
                            init_scale=0.1)
    assert np.isfinite(ok.history).all()


def test_atomic_writes_never_replace_a_device_or_a_fifo(tmp_path):
    """A write to a FIFO is refused (it was replaced by a regular file); a character
    device is written through and stays one (as root, `bench --json /dev/null` replaced
    /dev/null itself)."""
    import os
    import stat

    from losstopo._io import atomic_savez, atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for write in (lambda p: atomic_write_text(p, "x"), lambda p: atomic_savez(p, dict(a=1))):
        with pytest.raises(ValueError, match="not a regular file"):
            write(fifo)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
    except (PermissionError, OSError):
        node = None  # no CAP_MKNOD here: the FIFO case above still ran
    if node is not None:
        atomic_write_text(node, "discarded")
        atomic_savez(node, dict(a=np.arange(3)))
        assert stat.S_ISCHR(os.stat(node).st_mode)


def test_degenerate_sizes_and_spans_are_named():
    from losstopo import Landscape, slice2d

    ls = Landscape(NET, X, Y)
    th = NET.init(2)
    with pytest.raises(ValueError, match="B >= 1"):
        ls.evaluate_each(th, np.zeros((2, 0), dtype=np.int64))
    for span in (np.inf, (0.0, np.inf, 0.0, 1.0), np.nan):
        with pytest.raises(ValueError, match="span"):
            slice2d(ls, th[0].astype(np.float64), span=span, n=3)


def test_a_full_disk_names_the_file_and_huge_values_are_named_in_kernel_pca(tmp_path):
    import errno

    from losstopo import KernelPCA
    from losstopo._io import _atomic

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out.npz"
    with pytest.raises(OSError) as e:
        _atomic(target, full, "wb")
    assert e.value.filename == str(target) and e.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary left behind
    X = np.random.default_rng(0).random((5, 3)) * 1e200
    for kernel in ("rbf", "linear"):
        with pytest.raises(ValueError, match="too large"):
            KernelPCA(1, kernel=kernel).fit(X)


def test_a_checkpoint_must_be_a_regular_file(tmp_path):
    import os

    from losstopo import train

    for where in ("/dev/null", tmp_path):
        if not os.path.exists(where):
            continue
        with pytest.raises(ValueError, match="not a regular file"):
            train(NET, (X, Y), epochs=1, runs=1, progress=False, checkpoint=where)
