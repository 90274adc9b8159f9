"""A study's folder: the exclusive lock, the manifest (read with its checks, written
atomically), the log, and the one writer every study file goes through (it refuses
links and paths outside the folder, and lists each name in the manifest first, so
``--force`` removes exactly the study's own files)."""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
import time

from .._io import Folder, UnsafePathError, load_npz
from .config import StudyError, check_config, why

MANIFEST = "manifest.json"
LOG = "log.txt"
_FIELDS = (("config", dict), ("config_hash", str), ("stages", dict), ("results", dict),
           ("files", list))


class StudyFolder:
    """The folder ``out`` of one study, locked for the life of this object.

    ``names`` is the set of every file name a study can write (study_files()): the only
    names it lists, writes or removes."""

    def __init__(self, out, names: frozenset, quiet: bool = False):
        self.out = os.fspath(out)
        self.names = names
        self.quiet = quiet
        self.manifest = None
        self.log = None
        self._lockfile = None
        self._logstream = None
        try:
            self.folder = Folder(self.out)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e
        except OSError as e:
            raise StudyError(f"{self.out}: cannot create the study's folder ({why(e)}); "
                             "choose another --out") from e
        try:
            self.manifest_path = self.folder.path(MANIFEST)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    # ------------------------------------------------------------------ lock
    def lock(self):
        """An exclusive OS lock on the folder (released by close() or when the process
        ends): a second run on the same folder stops at once."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; studies there run unlocked
            return
        try:
            p = self.folder.unshare(".lock")  # a hard-linked copy's lock is its own
            fd = os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e
        except OSError as e:
            raise StudyError(f"{self.out}: cannot write in the study's folder ({why(e)}); "
                             "choose a writable --out") from e
        f = os.fdopen(fd, "r+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = f.read().strip() or "unknown process"
            f.close()
            raise StudyError(f"{self.out} is in use by another losstopo run ({holder}); wait "
                             "for it to finish or stop it, or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        self._lockfile = f

    def close(self):
        if self.log is not None:
            for h in list(self.log.handlers):
                h.close()
                self.log.removeHandler(h)
            self._logstream.close()
            self.log = None
        if self._lockfile is not None:
            self._lockfile.close()  # releases the flock
            self._lockfile = None

    # -------------------------------------------------------------- manifest
    def read_manifest(self):
        """The manifest as written, checked (None when the folder holds no study)."""
        p = self.manifest_path
        if not os.path.lexists(p):
            return None
        try:
            with open(p) as f:
                m = json.load(f)
        except (ValueError, OSError) as e:
            raise StudyError(f"{p}: unreadable ({why(e)}); move it away or choose another "
                             "--out") from e
        problems = []
        if not isinstance(m, dict):
            problems.append("not a JSON object")
        else:
            for key, types in _FIELDS:
                if key not in m and key != "files":
                    problems.append(f"no {key!r}")
                elif key in m and not isinstance(m[key], types):
                    problems.append(f"{key!r} is a {type(m[key]).__name__}, "
                                    f"not a {types.__name__}")
            if isinstance(m.get("files"), list) and not all(isinstance(x, str)
                                                            for x in m["files"]):
                problems.append("'files' holds names that are not strings")
        if problems:
            raise StudyError(f"{p}: not a study manifest ({'; '.join(problems)}); move it "
                             "away or choose another --out")
        check_config(m["config"], p)
        return m

    def write_manifest(self):
        try:
            self.folder.write_text(MANIFEST, json.dumps(self.manifest, indent=1,
                                                        sort_keys=True))
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def own(self, *names):
        """Lists ``names`` in the manifest (before they are written): --force removes
        exactly these."""
        files = self.manifest["files"]
        new = [n for n in names if n not in files]
        for n in new:
            if n not in self.names:  # every name comes from the code
                raise ValueError(f"{n!r} is not one of the study's file names")
            files.append(n)
        if new or not os.path.exists(self.manifest_path):
            self.write_manifest()

    def wipe(self, manifest):
        """Removes the files the old study wrote: the names its manifest lists (a
        manifest of an older version without a list: the names a study writes), and
        the figures folder if then empty."""
        listed = manifest.get("files")
        names = self.names if listed is None else self.names & set(listed)
        self.remove(manifest, sorted(names - {MANIFEST}) + [MANIFEST])
        figs = os.path.join(self.out, "figures")
        if os.path.isdir(figs) and not os.path.islink(figs) and not os.listdir(figs):
            os.rmdir(figs)

    def remove(self, manifest, names):
        """Removes ``names``, each only if the manifest lists it (or lists nothing, as an
        older version's did), it is one of the code's own names and a plain file, with
        the leftover temporaries of its atomic writes."""
        listed = manifest.get("files")
        for name in names:
            if name not in self.names or (listed is not None and name not in listed):
                continue
            try:
                p = self.folder.path(name)
            except UnsafePathError:
                continue  # a link or a folder where a file was: not ours to remove
            d, base = os.path.split(p)
            for q in [p] + glob.glob(os.path.join(glob.escape(d),
                                                  glob.escape(f".{base}.") + "*.tmp")):
                if os.path.isfile(q) and not os.path.islink(q):
                    os.remove(q)

    # ------------------------------------------------------------------- log
    def open_log(self, name: str):
        log = logging.getLogger(f"losstopo.study.{name}")
        log.setLevel(logging.INFO)
        log.propagate = False
        self._logstream = self.folder.open_append(LOG)
        fh = logging.StreamHandler(self._logstream)
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
        if not self.quiet and sys.stderr is not None:  # None: started with stderr closed
            sh = logging.StreamHandler()
            sh.setFormatter(logging.Formatter("[losstopo] %(message)s"))
            log.addHandler(sh)
        self.log = log
        return log

    # ----------------------------------------------------------------- files
    def path(self, name) -> str:
        """The checked path of one of the study's files (refuses links and escapes)."""
        try:
            return self.folder.path(name)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def exists(self, name) -> bool:
        return os.path.exists(self.path(name))

    def write(self, name, kind, payload):
        """Every write of the study: listed in the manifest first, then written through
        the folder's checks. ``kind``: "text", "bytes" or "npz" (a dict of arrays)."""
        self.own(name)
        try:
            if kind == "text":
                return self.folder.write_text(name, payload)
            if kind == "bytes":
                return self.folder.write_bytes(name, payload)
            return self.folder.savez(name, payload)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def load(self, name, stage, check=None) -> dict:
        """The arrays of one of the study's .npz files, checked; a clear StudyError
        (naming the file and what to do) for a missing, truncated or foreign file."""
        p = self.path(name)
        if not os.path.exists(p):
            raise StudyError(f"{p}: missing; run `losstopo {stage} --out {self.out}`")
        try:
            d = load_npz(p)
            if check is not None:
                check(d)
        except Exception as e:  # a truncated, foreign or malformed file
            raise StudyError(f"{p}: unreadable or not the study's ({why(e)}); delete it and "
                             f"run `losstopo {stage} --out {self.out}` to make it again") from e
        return d
