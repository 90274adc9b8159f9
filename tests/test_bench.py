"""`losstopo bench`: the suites at tiny sizes through the command line, the JSON it
writes, peers that are absent, and its argument checks."""

import importlib
import importlib.util
import json
import os
import sys

import pytest

from losstopo import bench, cli
from losstopo.bench import landscape

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """An empty MNIST cache: the suites must fall back to synthetic data, offline."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LOSSTOPO_CACHE", str(cache))
    monkeypatch.delenv("LOSSTOPO_MNIST", raising=False)
    return cache


def bench_json(tmp_path, capsys, *args):
    out = tmp_path / "out" / "bench.json"
    assert cli.main(["bench", *args, "--tiny", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    with open(out) as f:
        report = json.load(f)
    assert not [p for p in os.listdir(out.parent) if p != "bench.json"]  # no temporary left
    return report, captured


def positive(x):
    return isinstance(x, float) and x > 0


def test_landscape_quick_json_with_an_absent_peer(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now fails
    report, captured = bench_json(tmp_path, capsys, "landscape", "--quick", "--quiet")
    assert captured.err == ""  # --quiet: no progress
    m = report["machine"]
    assert m["cpu"] and m["logical_cores"] >= 1 and m["os"] and m["description"]
    assert report["size"] == "tiny" and list(report["suites"]) == ["landscape"]
    assert report["versions"]["jax"] == bench.NOT_INSTALLED
    assert report["versions"]["losstopo"] and report["versions"]["numpy"]
    suite = report["suites"]["landscape"]
    assert [c["case"] for c in suite["cases"]] == list(landscape.CASES)
    for c in suite["cases"]:
        assert positive(c["seconds"]["losstopo"]) and positive(c["gflops"]["losstopo"])
        assert c["N"] == min(landscape.CASES[c["case"]][1], 64)
        assert "jax" not in c["seconds"] and "jax" not in c["ratio"]
        if HAVE_TORCH:
            assert positive(c["seconds"]["torch"])
            assert c["ratio"]["torch"] == pytest.approx(
                c["seconds"]["torch"] / c["seconds"]["losstopo"])
        else:
            assert "torch" not in c["seconds"]
    assert all(positive(g) for g in suite["gemm_ceiling_gflops"].values())
    # The table: the machine, one row per case, the absent peer named in its columns.
    out = captured.out
    assert m["description"] in out and "jax not installed" in out
    rows = [line for line in out.splitlines() if line.startswith(("| a |", "| a64 |"))]
    assert len(rows) == 2 and all("| not installed | - |" in r for r in rows)
    assert all(r.count("not installed") == (1 if HAVE_TORCH else 2) for r in rows)


def test_train_suite_tiny_on_synthetic_data(tmp_path, capsys, no_mnist):
    report, captured = bench_json(tmp_path, capsys, "train")
    assert "bench train" in captured.err  # progress on stderr
    suite = report["suites"]["train"]
    assert suite["data"] == "synthetic" and "synthetic" in captured.out
    assert str(no_mnist) in captured.out  # says where it looked for MNIST
    kinds = {c["case"] for c in suite["cases"]}
    assert kinds == {"sgd_epoch", "lbfgs", "minimize"}
    assert all(positive(c["seconds"]) for c in suite["cases"])
    minimize = [c for c in suite["cases"] if c["case"] == "minimize" and "ratio" in c]
    assert len(minimize) == 2 and all(positive(c["ratio"]["scipy"]) for c in minimize)
    assert report["versions"]["torch"] == (
        importlib.import_module("torch").__version__ if HAVE_TORCH else bench.NOT_INSTALLED)
    if not HAVE_TORCH:
        assert captured.out.count("not installed") >= 2  # the SGD and L-BFGS peer rows


def test_paths_suite_tiny_without_torch(tmp_path, capsys, no_mnist, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    report, captured = bench_json(tmp_path, capsys, "paths", "--threads", "1", "--quiet")
    suite = report["suites"]["paths"]
    assert report["threads"] == 1 and suite["versions"]["torch"] == bench.NOT_INSTALLED
    [ours] = suite["cases"]
    assert ours["implementation"] == "losstopo" and positive(ours["seconds"])
    assert positive(ours["loss_and_grad_seconds"]) and ours["ratio"] == {}
    assert "| authors' approach (PyTorch, one point at a time) | not installed |" in captured.out


def test_unreadable_cache_falls_back_to_synthetic(no_mnist):
    no_mnist.mkdir()
    (no_mnist / "mnist.npz").write_bytes(b"not an npz")
    X, y, source = bench.mnist_like(10)
    assert source == "synthetic" and X.shape == (10, 784) and y.shape == (10,)


def test_bad_arguments_are_argparse_errors(tmp_path, capsys):
    for argv in (["bench", "everything"], ["bench", "--threads", "0"],
                 ["bench", "--threads", "two"], ["bench", "--json", str(tmp_path)]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="size"):
        bench.run(["paths"], size="huge")
    with pytest.raises(ValueError, match="suite"):
        bench.run(["nosuch"])
    with pytest.raises(ValueError, match="cases"):
        landscape.run("tiny", cases=["z"], progress=False)


def test_json_refuses_non_finite_numbers(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(ValueError, match="x.y"):
        bench.write_json(path, {"x": {"y": float("nan")}})
    assert not os.listdir(tmp_path)
    bench.write_json(path, {"x": [1.5, None]})
    assert json.loads(path.read_text()) == {"x": [1.5, None]}


def test_the_bench_modules_import_no_peer(monkeypatch):
    """Every module of losstopo.bench loads with jax and torch unimportable."""
    for name in ("jax", "torch"):
        monkeypatch.setitem(sys.modules, name, None)
    mods = ["losstopo.bench"] + [f"losstopo.bench.{m}" for m in
                                 ("machine", "timing", "table", "peers", "data",
                                  *bench.SUITES)]
    for m in mods:
        importlib.reload(importlib.import_module(m))
    assert bench.peers.load("jax") == (None, bench.NOT_INSTALLED)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_peak_memory_of_a_fresh_process():
    mib = landscape.peak_memory("c", 64, 1)
    assert 1.0 < mib < 4096.0


def test_jax_peer_when_installed():
    jax = pytest.importorskip("jax")
    before = jax.config.read("jax_enable_x64")
    result = landscape.run("tiny", cases=["c", "a64"], progress=False)
    assert jax.config.read("jax_enable_x64") == before  # the suite's float64 mode undone
    for c in result["cases"]:
        assert positive(c["seconds"]["jax"]) and positive(c["ratio"]["jax"])
    assert result["versions"]["jax"] == jax.__version__
