"""The package's file I/O in one place: atomic writes, .npz reading without pickles,
and the hash that keys a configuration (checkpoints, path files, study manifests)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np


def _atomic(path, write, mode: str) -> None:
    """write(f) into a fresh temporary file beside ``path`` (a unique name, so writers
    in several processes never share one), then rename it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_savez(path, arrays: dict, compressed: bool = False) -> None:
    """np.savez (or savez_compressed) to ``path`` through a temporary file and a rename."""
    save = np.savez_compressed if compressed else np.savez
    _atomic(path, lambda f: save(f, **arrays), "wb")


def atomic_write_text(path, text: str) -> None:
    """``text`` to ``path`` through a temporary file and a rename."""
    _atomic(path, lambda f: f.write(text), "w")


def load_npz(path) -> dict:
    """All arrays of an .npz as a dict (no pickles)."""
    with np.load(os.fspath(path), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def config_hash(config) -> str:
    """A short, stable hash of a JSON-serializable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
