"""The package's file I/O in one place: atomic writes, .npz reading without pickles,
the seal that binds a file to what wrote it, and the hash that keys a configuration
(checkpoints, path files, study manifests)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tempfile

import numpy as np


def _atomic(path, write, mode: str) -> None:
    """write(f) into a fresh temporary file beside ``path`` (a unique name, so writers
    in several processes never share one), then rename it over ``path``. A character
    device there (``/dev/null``, a terminal) is written through, never replaced; any
    other file that is not a regular one (a FIFO, a socket, a block device) is
    refused."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        kind = os.stat(path).st_mode
        if stat.S_ISCHR(kind):  # written whole, in one write (a device cannot seek)
            buf = io.BytesIO() if "b" in mode else io.StringIO()
            write(buf)
            with open(path, mode) as f:
                f.write(buf.getvalue())
            return
        if not stat.S_ISREG(kind):
            raise ValueError(f"{path}: not a regular file (a FIFO, socket or block device); "
                             "refusing to write over it: choose a file's path")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        try:
            with os.fdopen(fd, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: the error names the file being written
            if e.filename is None and e.errno is not None:
                raise OSError(e.errno, e.strerror or str(e), path) from e
            raise
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_savez(path, arrays: dict, compressed: bool = False, seal=None) -> None:
    """np.savez (or savez_compressed) to ``path`` through a temporary file and a rename;
    with ``seal`` (a dict), the arrays go out sealed with it (see :func:`sealed`)."""
    save = np.savez_compressed if compressed else np.savez
    if seal is not None:
        arrays = sealed(arrays, **seal)
    _atomic(path, lambda f: save(f, **arrays), "wb")


def npz_bytes(arrays: dict, seal=None) -> bytes:
    """The bytes np.savez writes for ``arrays`` (sealed with ``seal`` when given)."""
    if seal is not None:
        arrays = sealed(arrays, **seal)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def file_digest(path) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------ the seal
# Every .npz the package writes to be read back carries one more array, SEAL: a JSON
# object saying what wrote it (its "kind" and the writer's own binding: the
# configuration hash, a study's key and the file's role) and the digest of every
# other array (names, dtypes, shapes and bytes). Reading checks both, so a file
# edited after it was written, or written by something else, is refused by name.
SEAL = "seal"


def content_digest(arrays: dict) -> str:
    """sha256 over every array but the seal: its name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(k for k in arrays if k != SEAL):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def sealed(arrays: dict, **binding) -> dict:
    """``arrays`` with the seal: ``binding`` (JSON values; "kind" names the writer)
    and the arrays' digest."""
    if SEAL in arrays:
        raise ValueError(f"an array may not be named {SEAL!r} (the seal's name)")
    return dict(arrays, **{SEAL: np.array(json.dumps(dict(binding,
                                                            digest=content_digest(arrays)),
                                                       sort_keys=True))})


def unseal(arrays: dict, kind: str) -> dict:
    """Checks the seal of arrays read back (ValueError naming what is wrong) and
    returns its binding; the seal is taken out of ``arrays``."""
    raw = arrays.pop(SEAL, None)
    if raw is None:
        raise ValueError("no seal (not a file losstopo wrote, or written by a version "
                         "before files were sealed)")
    try:
        binding = json.loads(str(raw))
    except ValueError:
        binding = None
    if not isinstance(binding, dict) or not isinstance(binding.get("digest"), str):
        raise ValueError("its seal is not one losstopo writes")
    if binding.get("kind") != kind:
        raise ValueError(f"a {binding.get('kind')!r} file, not a {kind!r} file")
    if binding["digest"] != content_digest(arrays):
        raise ValueError("its arrays differ from those it was written with (edited "
                         "after it was written)")
    return binding


def load_sealed(path, kind: str):
    """(arrays, binding) of a sealed .npz of ``kind``, both checked (ValueError)."""
    arrays = load_npz(path)
    return arrays, unseal(arrays, kind)


def atomic_write_text(path, text: str) -> None:
    """``text`` to ``path`` through a temporary file and a rename."""
    _atomic(path, lambda f: f.write(text), "w")


def load_npz(path) -> dict:
    """All arrays of an .npz as a dict (no pickles)."""
    with open(os.fspath(path), "rb") as fh:  # closed even when the file is truncated
        d = np.load(fh, allow_pickle=False)
        if not hasattr(d, "files"):  # a single .npy array
            raise ValueError(f"{os.fspath(path)}: not an .npz archive")
        with d as f:
            return {k: f[k] for k in f.files}


def config_hash(config) -> str:
    """A short, stable hash of a JSON-serializable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class UnsafePathError(ValueError):
    """A write that would leave its folder or follow a symbolic link."""


class Folder:
    """Every write of a study goes through one of these: file names relative to the
    folder, checked before each write.

    A name must be relative, must not climb out (``..``), and neither the file nor any
    folder between it and the root may be a symbolic link; the resolved path must lie
    inside the resolved root. Writes are atomic (a unique temporary file made with
    mkstemp in the same folder, which never follows a link, then a rename, which
    replaces a link rather than following it); appends open with O_NOFOLLOW.
    """

    def __init__(self, root, create: bool = True):
        root = os.path.abspath(os.fspath(root))
        if os.path.lexists(root) and not os.path.isdir(root):
            raise UnsafePathError(f"{root} is a file, not a folder; choose another folder")
        if create:
            os.makedirs(root, exist_ok=True)
        self.root = root
        self.real = os.path.realpath(root)  # a link at the root itself is the user's choice

    def __repr__(self) -> str:
        return f"Folder({self.root!r})"

    def path(self, name, kind: str = "file") -> str:
        """The checked absolute path of ``name`` (refuses links and escapes)."""
        name = os.fspath(name)
        parts = name.replace(os.sep, "/").split("/")
        if (not name or os.path.isabs(name) or any(p in ("", ".", "..") for p in parts)):
            raise UnsafePathError(f"{self.root}: refusing the file name {name!r} "
                                  "(not a plain name inside the folder)")
        p = self.root
        for part in parts:
            p = os.path.join(p, part)
            if os.path.islink(p):
                raise UnsafePathError(
                    f"{p} is a symbolic link; the study writes only plain files inside "
                    f"{self.root}: remove the link (or choose another folder)")
        real = os.path.realpath(p)
        if os.path.commonpath([real, self.real]) != self.real or real == self.real:
            raise UnsafePathError(f"{p} resolves to {real}, outside {self.root}; refusing "
                                  "to write there")
        if os.path.lexists(p) and kind == "file" and not os.path.isfile(p):
            raise UnsafePathError(f"{p} exists and is not a plain file; remove it")
        return p

    def makedirs(self, name) -> str:
        p = self.path(name, kind="dir")
        if os.path.lexists(p) and not os.path.isdir(p):
            raise UnsafePathError(f"{p} exists and is not a folder; remove it")
        os.makedirs(p, exist_ok=True)
        return self.path(name, kind="dir")  # checked again after the creation

    def write_text(self, name, text: str) -> str:
        p = self._parent_ok(name)
        atomic_write_text(p, text)
        return p

    def write_bytes(self, name, data: bytes) -> str:
        p = self._parent_ok(name)
        _atomic(p, lambda f: f.write(data), "wb")
        return p

    def savez(self, name, arrays: dict, seal=None) -> str:
        p = self._parent_ok(name)
        atomic_savez(p, arrays, seal=seal)
        return p

    def open_append(self, name):
        """A text stream appending to ``name``; never follows a link, and never appends
        to a file shared by a hard link (a hard-linked copy of the folder): that one is
        copied first, so the other name keeps its contents."""
        p = self._parent_ok(name)
        self.unshare(name)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                     0o644)
        return os.fdopen(fd, "a")

    def unshare(self, name) -> str:
        """``name`` made this folder's own where it is a hard link shared with another
        name: its contents copied to a fresh file put in its place (the other name keeps
        the old file). Returns the checked path."""
        p = self.path(name)
        if os.path.isfile(p) and os.stat(p).st_nlink > 1:
            with open(p, "rb") as f:
                data = f.read()
            self.write_bytes(name, data)  # a new file renamed over the name: unshared
        return p

    def _parent_ok(self, name) -> str:
        p = self.path(name)
        parent = os.path.dirname(p)
        if parent != self.root and not os.path.isdir(parent):
            self.makedirs(os.path.relpath(parent, self.root))
        return self.path(name)
