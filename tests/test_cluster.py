"""Paths and training on a Dask cluster of local worker processes (loopback only):
the same numbers as one process, faults survived, resumes that redo nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import losstopo
from losstopo import MLP, Landscape, barrier_matrix
from losstopo import cluster as cluster_mod

distributed = pytest.importorskip(
    "distributed", reason="dask[distributed] not installed (pip install \".[distributed]\")")

NET = MLP([12, 10, 3])
PATH_KW = dict(n_points=9, n_modes=3, steps=6, lr=0.01, progress=False, chunk=1)


def _landscape(n=400):
    X, y = losstopo.datasets.synthetic(n, 12, 3, seed=0)
    return Landscape(NET, X, y, threads=1)


@pytest.fixture(scope="module")
def cluster():
    with cluster_mod.Cluster("local:2") as c:
        yield c


def test_local_workers_take_one_task_and_their_share_of_cores(cluster):
    assert set(cluster.client.nthreads().values()) == {1}
    share = max(1, cluster_mod.cores() // 2)
    assert set(cluster_mod.worker_threads(cluster.client).values()) == {share}
    assert cluster_mod.engine_threads(cluster.client, (_landscape(),)) == 1  # its own
    assert cluster_mod.engine_threads(cluster.client, ()) == share
    # tasks claim their engine threads of the resource (one engine per worker) when
    # every worker offers enough of it, and nothing they could wait on forever
    assert cluster_mod._task_resources(cluster.client, share) == {"losstopo_threads": share}
    assert cluster_mod._task_resources(cluster.client, share + 1) is None
    assert "2 workers" in cluster.describe()


def test_barrier_matrix_on_a_cluster_equals_one_process(cluster):
    ls = _landscape()
    th = NET.init(5, seed=1)
    ref = barrier_matrix(ls, th, pairs=6, **PATH_KW)
    got = barrier_matrix(ls, th, pairs=6, client=cluster.client, **PATH_KW)
    for key in ("barrier", "barrier_refined", "losses", "length", "straight_barrier", "done"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


@pytest.mark.parametrize("method, epochs", [("sgd", 2), ("lbfgs", 8)])
def test_train_on_a_cluster_equals_one_process(cluster, method, epochs):
    X, y = losstopo.datasets.synthetic(1500, 12, 3, seed=1)
    ls, te = Landscape(NET, X, y, threads=1), Landscape(NET, X[:300], y[:300], threads=1)
    kw = dict(method=method, runs=5, seed=2, epochs=epochs, group=2, progress=False)
    ref = losstopo.train(NET, ls, te, **kw)
    got = losstopo.train(NET, ls, te, client=cluster.client, **kw)
    for key in ("theta_final", "theta_best_train", "theta_best_test", "train_loss", "test_loss",
                "status", "run_ids"):
        np.testing.assert_array_equal(getattr(got, key), getattr(ref, key), err_msg=key)
    # and a group's runs are those runs trained on their own, in one batch
    alone = losstopo.train(NET, ls, te, method=method, runs=[2, 3], seed=2, epochs=epochs,
                           progress=False)
    np.testing.assert_array_equal(got.theta_final[2:4], alone.theta_final)


def test_grouped_training_resumes_finished_groups(tmp_path, monkeypatch):
    X, y = losstopo.datasets.synthetic(600, 12, 3, seed=1)
    ls = Landscape(NET, X, y, threads=1)
    kw = dict(method="sgd", runs=5, seed=2, epochs=2, group=2, progress=False)
    ref = losstopo.train(NET, ls, **kw)
    train_mod = sys.modules["losstopo.train"]  # the module (losstopo.train is the function)
    real, calls = train_mod._group_task, []

    def dying(*a):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(a[-1][0].tolist())
        return real(*a)

    monkeypatch.setattr(train_mod, "_group_task", dying)
    ck = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        losstopo.train(NET, ls, checkpoint=ck, **kw)
    calls.clear()
    monkeypatch.setattr(train_mod, "_group_task", lambda *a: calls.append(a[-1][0].tolist())
                        or real(*a))
    got = losstopo.train(NET, ls, checkpoint=ck, **kw)
    assert calls == [[4]]  # only the unfinished group
    np.testing.assert_array_equal(got.theta_final, ref.theta_final)
    with pytest.raises(ValueError, match="checkpoint.*different configuration"):
        losstopo.train(NET, ls, checkpoint=ck, **dict(kw, group=3))
    # a group that is not its runs (an edited file) is refused, not used
    import edits

    d = losstopo._io.load_npz(ck)
    edits.careless(ck, g0__run_ids=d["g0__run_ids"][::-1].copy())
    with pytest.raises(ValueError, match="edited after it was written"):
        losstopo.train(NET, ls, checkpoint=ck, **kw)
    losstopo._io.atomic_savez(ck, d)  # the file as written, then edited and sealed again
    edits.resealed(ck, g0__run_ids=d["g0__run_ids"][::-1].copy())
    with pytest.raises(ValueError, match="group 0"):
        losstopo.train(NET, ls, checkpoint=ck, **kw)


def test_a_killed_worker_loses_nothing(tmp_path, cluster):
    ls = _landscape(n=3000)
    th = NET.init(6, seed=3)
    kw = dict(PATH_KW, steps=40)
    ref = barrier_matrix(ls, th, pairs=10, **kw)
    out = tmp_path / "pairs.npz"
    pids = cluster.client.run(os.getpid)
    killed = []

    def killer():  # once the first chunk is written, kill a worker process
        t0 = time.time()
        while not out.exists() and time.time() - t0 < 60:
            time.sleep(0.02)
        pid = sorted(pids.values())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(int(losstopo._io.load_npz(out)["done"].sum()))

    t = threading.Thread(target=killer)
    t.start()
    got = barrier_matrix(ls, th, pairs=10, out=out, client=cluster.client, **kw)
    t.join()
    assert killed and killed[0] < 10, "the worker was killed after the run had finished"
    assert got["done"].all()
    saved = losstopo._io.load_npz(out)
    assert saved["done"].all() and len(saved["pairs"]) == 10
    assert len({tuple(p) for p in saved["pairs"]}) == 10  # every pair once
    for key in ("barrier", "losses", "barrier_refined"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
        np.testing.assert_array_equal(saved[key], ref[key], err_msg=key)
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarted it


CLIENT_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, losstopo
    from losstopo.cluster import Cluster
    if __name__ == "__main__":
        X, y = losstopo.datasets.synthetic(3000, 12, 3, seed=0)
        net = losstopo.MLP([12, 10, 3])
        ls = losstopo.Landscape(net, X, y, threads=1)
        th = net.init(6, seed=3)
        with Cluster("local:2") as c:
            losstopo.barrier_matrix(ls, th, pairs=10, out=sys.argv[1], client=c.client,
                                    n_points=9, n_modes=3, steps=40, lr=0.01,
                                    progress=False, chunk=1)
""")


def test_a_killed_client_resumes_only_missing_work(tmp_path, monkeypatch):
    out = tmp_path / "pairs.npz"
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    log = tmp_path / "client.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, str(script), str(out)],
                                start_new_session=True, stdout=f, stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while not out.exists() and time.time() - t0 < 120 and proc.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its worker processes
        proc.wait()
    assert out.exists(), f"the client wrote nothing before it was killed: {log.read_text()}"
    done_before = losstopo._io.load_npz(out)["done"]
    assert 0 < done_before.sum() < 10
    ls = _landscape(n=3000)
    th = NET.init(6, seed=3)
    kw = dict(PATH_KW, steps=40)
    submitted = []
    real = cluster_mod.as_finished

    def counting(client, fn, shared, items, key=None):
        items = list(items)
        submitted.extend(items)
        return real(client, fn, shared, items, key)

    monkeypatch.setattr(cluster_mod, "as_finished", counting)
    with cluster_mod.Cluster("local:2") as c:
        got = barrier_matrix(ls, th, pairs=10, out=out, client=c.client, **kw)
    assert len(submitted) == 10 - int(done_before.sum())  # chunk=1: one task per pair
    ref = barrier_matrix(ls, th, pairs=10, **kw)
    np.testing.assert_array_equal(got["barrier"], ref["barrier"])
    assert got["done"].all()


@pytest.mark.parametrize("spec, match", [
    ("local:0", "local:N"), ("local:x", "local:N"), ("tcp://host", "tcp://HOST:PORT"),
    ("tcp://host:99999", "port"), ("nowhere", "expected local:N"), ("", "expected"),
    ("missing-scheduler.json", "not found"), ("local:99999", "local:N"),
])
def test_malformed_cluster_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        cluster_mod.Cluster(spec)


def test_bad_scheduler_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a Dask scheduler file"):
        cluster_mod.Cluster(str(bad))
    bad.write_text('{"id": "x"}')
    with pytest.raises(ValueError, match="no scheduler address"):
        cluster_mod.Cluster(str(bad))


def test_lost_data_is_sent_again(tmp_path):
    """With one worker, killing it loses the shared data too: they are sent again to
    its replacement and the unfinished pairs resubmitted."""
    ls = _landscape(n=3000)
    th = NET.init(5, seed=3)
    kw = dict(PATH_KW, steps=40)
    ref = barrier_matrix(ls, th, pairs=6, **kw)
    out = tmp_path / "pairs.npz"
    with cluster_mod.Cluster("local:1") as c:
        pid = list(c.client.run(os.getpid).values())[0]
        done = []

        def killer():  # after the first pair
            t0 = time.time()
            while not out.exists() and time.time() - t0 < 60:
                time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
            done.append(int(losstopo._io.load_npz(out)["done"].sum()))

        t = threading.Thread(target=killer)
        t.start()
        got = barrier_matrix(ls, th, pairs=6, client=c.client, out=out, **kw)
        t.join()
    assert done and done[0] < 6
    np.testing.assert_array_equal(got["barrier"], ref["barrier"])


def test_train_on_a_cluster_needs_groups(cluster):
    X, y = losstopo.datasets.synthetic(100, 12, 3, seed=1)
    with pytest.raises(ValueError, match="group"):
        losstopo.train(NET, (X, y), runs=2, epochs=1, client=cluster.client, progress=False)


def test_unreachable_scheduler_fails_fast():
    t = time.time()
    with pytest.raises(ConnectionError, match="cannot reach"):
        cluster_mod.Cluster("tcp://127.0.0.1:9", timeout=2)
    assert time.time() - t < 30


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"losstopo\[distributed\]"):
        cluster_mod.Cluster("local:2")
    th = NET.init(3, seed=1)
    with pytest.raises(ImportError, match=r"losstopo\[distributed\]"):
        barrier_matrix(_landscape(), th, pairs=1, client=object(), **PATH_KW)


def test_a_client_must_be_a_client():
    with pytest.raises(TypeError, match="Client"):
        barrier_matrix(_landscape(), NET.init(3, seed=1), pairs=1, client="local:2", **PATH_KW)


def test_landscape_pickles_with_its_data_and_settings():
    import pickle

    ls = Landscape(NET, *losstopo.datasets.synthetic(200, 12, 3, seed=5), threads=1, chunk=64)
    back = pickle.loads(pickle.dumps(ls))
    th = NET.init(3, seed=1)
    assert back.fingerprint == ls.fingerprint and back.threads == 1 and back.chunk == 64
    np.testing.assert_array_equal(back.loss_and_grad(th)[1], ls.loss_and_grad(th)[1])
    ae = MLP([12, 5, 12], loss="mse", output="sigmoid")
    X = np.random.default_rng(0).random((50, 12))
    a = Landscape(ae, X, dtype="float64")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).loss(ae.init(2, dtype="float64")),
                                  a.loss(ae.init(2, dtype="float64")))


def test_study_on_a_cluster_equals_one_process(tmp_path):
    """`losstopo reproduce --cluster local:2` writes the numbers of a one-thread run."""
    from losstopo import cli

    tiny = ["--data", "synthetic", "--n-train", "300", "--n-test", "100", "--runs", "3",
            "--keep", "2", "--epochs", "2", "--iters", "3", "--pairs", "2", "--path-steps",
            "3", "--train-group", "2", "--quiet"]
    one, many = tmp_path / "one", tmp_path / "many"
    assert cli.main(["reproduce", "--out", str(one), "--threads", "1"] + tiny) == 0
    assert cli.main(["reproduce", "--out", str(many), "--cluster", "local:2", "--threads", "1"]
                    + tiny) == 0
    names = sorted(f for f in os.listdir(one) if f.endswith(".npz") and "checkpoint" not in f)
    assert "paths_SGD-train_train.npz" in names and "ensemble_lbfgs.npz" in names
    for name in names:
        a, b = losstopo._io.load_npz(one / name), losstopo._io.load_npz(many / name)
        for key in a:
            if key not in ("meta", "seal"):  # timings (and the seal's digest of them)
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    assert cli.main(["paths", "--out", str(many), "--cluster", "tcp://nowhere"]) == 2
