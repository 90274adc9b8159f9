"""Training populations: SGD against a float64 reference, populations against single
runs, checkpoints, non-finite runs, ensembles."""

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Ensemble, train
from losstopo._native import core
from losstopo.train import _run_seed

import reference

NET = MLP([6, 5, 3], activation="tanh", bias=True)


def data(n=50, seed=0):
    return losstopo.datasets.synthetic(n, 6, 3, seed=seed, dtype="float64")


def test_permutation_is_a_deterministic_permutation():
    a = core.permutation(7, 0, 3, 100)
    assert sorted(a) == list(range(100))
    np.testing.assert_array_equal(a, core.permutation(7, 0, 3, 100))
    assert not np.array_equal(a, core.permutation(7, 0, 4, 100))
    assert not np.array_equal(a, core.permutation(8, 0, 3, 100))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_float64_reference_trajectory(momentum):
    X, y = data(50)
    lr, B, epochs = 0.2, 16, 3
    ens = train(NET, (X, y), method="sgd", runs=[2], seed=5, epochs=epochs, lr=lr,
                momentum=momentum, batch_size=B, dtype="float64", progress=False)
    theta = NET.init(1, seed=5, dtype="float64", first=2)[0]
    v = np.zeros_like(theta)
    curve = [reference.loss_and_grad(NET, theta, X, y)[0]]
    for e in range(epochs):
        order = core.permutation(_run_seed(5, 2), 0, e, 50)
        for k in range(0, 50, B):  # the last batch holds 2 samples
            idx = order[k:k + B]
            _, g = reference.loss_and_grad(NET, theta, X[idx], y[idx])
            v = momentum * v + g
            theta = theta - lr * v
        curve.append(reference.loss_and_grad(NET, theta, X, y)[0])
    np.testing.assert_allclose(ens.theta_final[0], theta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ens.train_loss[0], curve, rtol=1e-11)
    assert ens.epoch_best_train[0] == int(np.argmin(curve))


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_population_equals_runs_one_at_a_time(method):
    X, y = data(60)
    kw = dict(method=method, seed=3, epochs=4, dtype="float64", progress=False, batch_size=8)
    pop = train(NET, (X, y), (X[:20], y[:20]), runs=3, **kw)
    for r in range(3):
        one = train(NET, (X, y), (X[:20], y[:20]), runs=[r], **kw)
        np.testing.assert_allclose(one.theta_final[0], pop.theta_final[r], rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(one.test_loss[0], pop.test_loss[r], rtol=1e-12)
        assert one.epoch_best_test[0] == pop.epoch_best_test[r]


def test_shared_order_gives_all_runs_the_same_batches():
    X, y = data(40)
    kw = dict(seed=1, epochs=2, lr=0.1, batch_size=8, dtype="float64", progress=False)
    shared = train(NET, (X, y), runs=2, shared_order=True, **kw)
    # run 1 of a shared-order population sees the order of the whole population
    theta = NET.init(1, seed=1, dtype="float64", first=1)[0]
    for e in range(2):
        order = core.permutation(1, 0, e, 40)
        for k in range(0, 40, 8):
            _, g = reference.loss_and_grad(NET, theta, X[order[k:k + 8]], y[order[k:k + 8]])
            theta = theta - 0.1 * g
    np.testing.assert_allclose(shared.theta_final[1], theta, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_lbfgs_and_sgd_decrease_the_loss(method):
    X, y = losstopo.datasets.synthetic(300, 6, 3, seed=2)
    ens = train(NET, (X, y), (X[:100], y[:100]), method=method, runs=4, epochs=10,
                progress=False)
    assert (ens.best_train_loss < ens.train_loss[:, 0]).all()
    assert np.isfinite(ens.train_acc).all() and np.isfinite(ens.test_acc).all()
    assert ens.train_loss.shape == (4, 11) and ens.theta_best_test.shape == (4, NET.num_params)
    for r in range(4):  # the snapshots are where the curves are lowest
        e = ens.epoch_best_train[r]
        assert ens.train_loss[r, e] == np.nanmin(ens.train_loss[r])


class Interrupt(Exception):
    pass


EDITS = [
    # (array, edit, message): a checkpoint with intact metadata and edited arrays
    ("best_train_epoch", lambda a: a.__setitem__(0, 2**30), "best_train_epoch"),
    ("best_train_epoch", lambda a: a.__setitem__(0, 300), "best_train_epoch"),
    ("best_test_epoch", lambda a: a.__setitem__(1, -7), "best_test_epoch"),
    ("status", lambda a: a.__setitem__(0, 42), "status 42"),
    ("theta", lambda a: a.__setitem__((0, 0), np.nan), "parameters are not finite"),
    ("train_loss", lambda a: a.__setitem__((0, -1), 0.5), "beyond epoch"),
    ("lbfgs_count", lambda a: a.__setitem__(0, 99), "history size 99"),
    ("lbfgs_nit", lambda a: a.__setitem__(0, -3), "counters"),
    ("lbfgs_g", lambda a: a.__setitem__((0, 0), np.inf), "L-BFGS state is not finite"),
]


@pytest.mark.parametrize("array, edit, message", EDITS, ids=[e[2] for e in EDITS])
def test_edited_checkpoint_is_refused(array, edit, message, tmp_path):
    """An edited checkpoint is refused by its seal; and arrays restored into the core
    are checked there before use, even when the edit was sealed again (no crash, no
    wrong Table I from an edited best epoch)."""
    from losstopo._io import atomic_savez, load_npz, unseal

    X, y = losstopo.datasets.synthetic(120, 6, 3, seed=4)
    kw = dict(method="lbfgs", runs=2, seed=9, epochs=8, progress=False, checkpoint_every=2)
    ck = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupt):
        _interrupted(ck, X, y, kw)
    raw = load_npz(ck)
    data = dict(raw)
    meta = unseal(data, "checkpoint")
    meta.pop("digest")
    assert 0 < meta["epoch"] < 8
    arr = data[array].copy()
    edit(arr)
    data[array] = raw[array] = arr
    atomic_savez(ck, raw)  # the seal kept, an array edited after it
    with pytest.raises(ValueError, match="edited after it was written"):
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **kw)
    atomic_savez(ck, data)  # no seal at all
    with pytest.raises(ValueError, match="no seal"):
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **kw)
    atomic_savez(ck, data, seal=meta)  # sealed again: the core's own checks refuse it
    with pytest.raises(ValueError, match=message):
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **kw)


def _interrupted(ck, X, y, kw):
    """Trains with a checkpoint and stops after epoch 4 (the checkpoint holds epoch 4)."""
    from losstopo import progress as prog

    real_set = prog.Progress.set

    def set_and_die(self, n, postfix=None):
        real_set(self, n, postfix)
        if n == 4:
            raise Interrupt()

    prog.Progress.set = set_and_die
    try:
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **kw)
    finally:
        prog.Progress.set = real_set


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_checkpoint_resume_is_bitwise(method, tmp_path, monkeypatch):
    X, y = losstopo.datasets.synthetic(200, 6, 3, seed=4)
    kw = dict(method=method, runs=3, seed=9, epochs=6, batch_size=32, progress=False,
              checkpoint_every=2)
    full = train(NET, (X, y), (X[:50], y[:50]), **kw)
    ck = tmp_path / "run.ckpt.npz"
    from losstopo import progress as prog

    real_set = prog.Progress.set

    def set_and_die(self, n, postfix=None):
        real_set(self, n, postfix)
        if n == 3:
            raise Interrupt()

    monkeypatch.setattr(prog.Progress, "set", set_and_die)
    with pytest.raises(Interrupt):
        train(NET, (X, y), (X[:50], y[:50]), checkpoint=ck, **kw)
    monkeypatch.setattr(prog.Progress, "set", real_set)
    assert ck.exists()
    resumed = train(NET, (X, y), (X[:50], y[:50]), checkpoint=ck, **kw)
    for name in ("theta_final", "theta_best_train", "theta_best_test", "train_loss",
                 "test_loss", "epoch_best_train", "epoch_best_test", "status"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(full, name), err_msg=name)
    # a finished checkpoint returns the result at once; another configuration is refused
    again = train(NET, (X, y), (X[:50], y[:50]), checkpoint=ck, **kw)
    np.testing.assert_array_equal(again.theta_final, full.theta_final)
    with pytest.raises(ValueError, match="different configuration"):
        train(NET, (X, y), (X[:50], y[:50]), checkpoint=ck, **dict(kw, seed=10))
    ck.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        train(NET, (X, y), (X[:50], y[:50]), checkpoint=ck, **kw)


@pytest.mark.parametrize("method", ["sgd", "lbfgs"])
def test_nonfinite_run_stops_and_others_continue(method):
    X, y = losstopo.datasets.synthetic(100, 6, 3, seed=0)
    net = MLP([6, 5, 3], activation="relu")
    theta0 = net.init(3, seed=0)
    theta0[1] *= 1e30  # overflows to inf/nan in float32
    ens = train(net, (X, y), method=method, runs=3, epochs=3, theta0=theta0, progress=False)
    assert ens.status[1] == 5 and "non-finite" in ens.messages[1]
    assert ens.status[0] == ens.status[2] == 3
    assert np.isfinite(ens.train_loss[[0, 2]]).all()


def test_ensemble_select_save_load(tmp_path):
    X, y = losstopo.datasets.synthetic(100, 6, 3, seed=0)
    ens = train(NET, (X, y), (X, y), runs=5, epochs=3, progress=False)
    best = ens.select(2)
    assert best.runs == 2
    assert set(best.best_train_loss) == set(np.sort(ens.best_train_loss)[:2])
    p = tmp_path / "ens.npz"
    best.save(p)
    back = Ensemble.load(p)
    assert back.net == NET and back.meta["method"] == "sgd"
    assert back.meta["version"] == losstopo.__version__ and back.meta["train_data"]
    np.testing.assert_array_equal(back.theta_best_test, best.theta_best_test)
    np.testing.assert_array_equal(back.run_ids, best.run_ids)
    with pytest.raises(ValueError, match="k"):
        ens.select(6)
    with pytest.raises(FileNotFoundError):
        Ensemble.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="ensemble"):
        Ensemble.load(tmp_path / "bad.npz")
    # an edited file: its arrays are checked against each other
    import edits
    from losstopo._io import load_npz

    for name, value, message in (("epoch_best_train", 2**30, "epoch_best_train"),
                                 ("epoch_best_train", 1, "minimum"),
                                 ("status", 99, "status"),
                                 ("theta_best_test", np.nan, "not finite")):
        d = load_npz(p)
        arr = d[name].copy()
        arr[0] = value
        edits.careless(p, tmp_path / "edited.npz", **{name: arr})
        with pytest.raises(ValueError, match="edited after it was written"):
            Ensemble.load(tmp_path / "edited.npz")
        edits.resealed(p, tmp_path / "edited.npz", **{name: arr})
        with pytest.raises(ValueError, match=message):
            Ensemble.load(tmp_path / "edited.npz")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(method="adam"), ValueError, "method"),
        (dict(runs=0), ValueError, "runs"),
        (dict(runs=[1, 1]), ValueError, "runs"),
        (dict(epochs=-1), ValueError, "epochs"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(line_search="wolfe"), ValueError, "line_search"),
        (dict(theta0=np.zeros((2, 3))), ValueError, "theta0"),
        (dict(theta0=np.full((1, NET.num_params), np.nan)), ValueError, "theta0: contains NaN"),
        (dict(theta0=np.full((1, NET.num_params), np.inf)), ValueError, "theta0: contains NaN"),
        (dict(train=(np.zeros((5, 6)),)), TypeError, "train"),
        (dict(train=(np.zeros((5, 6)), np.arange(5))), ValueError, "labels"),
        (dict(net="fcp"), TypeError, "net"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    X, y = losstopo.datasets.synthetic(20, 6, 3, seed=0)
    args = dict(net=NET, train=(X, y), epochs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        train(**args)


def test_data_fingerprint_is_the_same_for_arrays_and_landscapes():
    X, y = losstopo.datasets.synthetic(60, 6, 3, seed=0)
    a = train(NET, (X, y), runs=1, epochs=1, progress=False)
    b = train(NET, losstopo.Landscape(NET, X, y), runs=1, epochs=1, progress=False)
    c = train(NET, (X[::-1], y[::-1]), runs=1, epochs=1, progress=False)
    assert a.meta["train_data"] == b.meta["train_data"] != c.meta["train_data"]
    assert a.meta["config_hash"] == b.meta["config_hash"] != c.meta["config_hash"]


def test_a_checkpoint_resumes_only_with_the_arithmetic_it_was_written_with(tmp_path):
    """The engine's sums round by its thread count: a population interrupted at one
    count and resumed at another would be a third result. The checkpoint records the
    count (and the instruction set and BLAS kernels), another is refused with the way
    out, and the recorded one resumes bitwise the uninterrupted run."""
    X, y = losstopo.datasets.synthetic(120, 6, 3, seed=4)
    kw = dict(method="lbfgs", runs=2, seed=9, epochs=8, progress=False, checkpoint_every=2)
    ck = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupt):
        _interrupted(ck, X, y, dict(kw, threads=1))
    with pytest.raises(ValueError, match=r"engine threads 1 \(here 2\).*threads=1"):
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **dict(kw, threads=2))
    got = train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **dict(kw, threads=1))
    ref = train(NET, (X, y), (X[:40], y[:40]), **dict(kw, threads=1))
    np.testing.assert_array_equal(got.theta_final, ref.theta_final)
    np.testing.assert_array_equal(got.train_loss, ref.train_loss)
    from losstopo._io import load_npz, unseal

    d = load_npz(ck)
    meta = unseal(d, "checkpoint")
    meta.pop("digest")
    meta["engine"] = dict(meta["engine"], blas_kernels="NoSuchCore")  # another machine's
    losstopo._io.atomic_savez(ck, d, seal=meta)
    with pytest.raises(ValueError, match="OPENBLAS_CORETYPE=NoSuchCore"):
        train(NET, (X, y), (X[:40], y[:40]), checkpoint=ck, **dict(kw, threads=1))
