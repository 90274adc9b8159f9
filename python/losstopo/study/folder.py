"""A study's folder: the exclusive lock, the manifest (read with its checks, written
atomically), the log, and the one writer every study file goes through (it refuses
links and paths outside the folder, and lists each name in the manifest first, so
``--force`` removes exactly the study's own files).

Every file of the study is bound to it: the manifest's ``bindings`` record, for each
file written, its role (the name it was written under), the study's key and the
sha256 of its bytes; the .npz files the study writes itself are sealed with the same
key and role. A file is read only when its bytes are the ones recorded, so a file
edited, truncated, swapped with another of the study's or brought from another study
is refused by name, never used."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import sys
import time

from .._io import SEAL, Folder, UnsafePathError, file_digest, load_npz, npz_bytes, unseal
from .config import StudyError, check_config, why

MANIFEST = "manifest.json"
LOG = "log.txt"
_FIELDS = (("config", dict), ("config_hash", str), ("stages", dict), ("results", dict),
           ("files", list), ("bindings", dict))
_OPTIONAL = ("files", "bindings")  # absent from the manifests of older versions


class StudyFolder:
    """The folder ``out`` of one study, locked for the life of this object.

    ``names`` is the set of every file name a study can write (study_files()): the only
    names it lists, writes or removes."""

    def __init__(self, out, names: frozenset, quiet: bool = False):
        self.out = os.fspath(out)
        self.names = names
        self.quiet = quiet
        self.manifest = None
        self.study = None  # the study's key (config.study_key), set by the runner
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
                if key not in m and key not in _OPTIONAL:
                    problems.append(f"no {key!r}")
                elif key in m and not isinstance(m[key], types):
                    problems.append(f"{key!r} is a {type(m[key]).__name__}, "
                                    f"not a {types.__name__}")
            if isinstance(m.get("files"), list) and not all(isinstance(x, str)
                                                            for x in m["files"]):
                problems.append("'files' holds names that are not strings")
            if isinstance(m.get("bindings"), dict) and not all(
                    isinstance(b, dict) and isinstance(b.get("sha256"), str)
                    for b in m["bindings"].values()):
                problems.append("'bindings' holds records without a sha256")
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
            manifest.get("bindings", {}).pop(name, None)
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
        the folder's checks, then its binding recorded. ``kind``: "text", "bytes" or
        "npz" (a dict of arrays, sealed with the study's key and the file's role)."""
        self.own(name)
        if kind == "text":
            data = payload.encode()
        elif kind == "bytes":
            data = payload
        else:
            data = npz_bytes(payload, seal=dict(kind="study", study=self.study, role=name))
        try:
            p = self.folder.write_bytes(name, data)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e
        self._bind(name, hashlib.sha256(data).hexdigest())
        return p

    def record(self, name) -> None:
        """Binds a file a library function wrote in the folder (an ensemble, a paths
        file) to the study, as it is now."""
        self._bind(name, file_digest(self.path(name)))

    def _bind(self, name, digest) -> None:
        bindings = self.manifest.setdefault("bindings", {})
        bindings[name] = dict(role=name, study=self.study, sha256=digest)
        self.write_manifest()

    def adopt(self) -> list:
        """Binds the files of a study written before studies recorded their files (a
        manifest without ``bindings``) as they are now, once, marked unsealed (they are
        read with their own checks); returns their names."""
        adopted = []
        bindings = self.manifest.setdefault("bindings", {})
        listed = self.manifest.get("files")
        for name in sorted(self.names if listed is None else self.names & set(listed)):
            if not name.endswith(".npz") or name in bindings:
                continue
            try:
                p = self.folder.path(name)
            except UnsafePathError:
                continue
            if os.path.isfile(p):
                bindings[name] = dict(role=name, study=self.study, sha256=file_digest(p),
                                      sealed=False)
                adopted.append(name)
        self.write_manifest()
        return adopted

    def sealed(self, name) -> bool:
        """Whether the study's file ``name`` carries a seal (all but adopted ones)."""
        return self.manifest.get("bindings", {}).get(name, {}).get("sealed", True)

    def recorded(self, name) -> bool:
        return name in self.manifest.get("bindings", {})

    def verify(self, name, stage) -> str:
        """The checked path of one of the study's files whose bytes are those the study
        recorded; a StudyError naming the file and what to do otherwise."""
        p = self.path(name)
        if not os.path.exists(p):
            raise StudyError(f"{p}: missing; run `losstopo {stage} --out {self.out}`")
        redo = (f"delete it and run `losstopo {stage} --out {self.out}` to make it again "
                "(or restore the study's own file)")
        rec = self.manifest.get("bindings", {}).get(name)
        if rec is None:
            raise StudyError(f"{p}: not recorded in {MANIFEST} as this study's file (brought "
                             f"from elsewhere, or left by an interrupted write); {redo}")
        try:
            digest = file_digest(p)
        except OSError as e:
            raise StudyError(f"{p}: unreadable ({why(e)}); {redo}") from e
        if digest != rec["sha256"]:
            raise StudyError(f"{p}: not the file this study wrote ({self._whose(p, name)}); "
                             f"{redo}")
        return p

    def _whose(self, p, name) -> str:
        """Why a file's bytes differ from the record, as far as its seal tells."""
        try:
            d = load_npz(p)
            binding = unseal(d, "study") if SEAL in d else {}
        except Exception:
            return "truncated, edited or foreign: its bytes differ from those recorded"
        if binding.get("study") not in (None, self.study):
            return "written by another study"
        if binding.get("role") not in (None, name):
            return f"this study's {binding['role']}, under another name"
        return "edited after it was written: its bytes differ from those recorded"

    def load(self, name, stage, check=None, kind="study") -> dict:
        """The arrays of one of the study's .npz files, bound to the study (verify) and
        checked; a clear StudyError (naming the file and what to do) for a missing,
        truncated, edited or foreign file. ``kind``: the writer the file's seal names
        ("study" for the study's own writes)."""
        p = self.verify(name, stage)
        try:
            d = load_npz(p)
            binding = unseal(d, kind) if self.sealed(name) else {}
            if kind == "study" and self.sealed(name) and (binding.get("study") != self.study
                                                          or binding.get("role") != name):
                raise ValueError("sealed for another study or another file")
            if check is not None:
                check(d)
        except Exception as e:  # a truncated, foreign or malformed file
            raise StudyError(f"{p}: unreadable or not the study's ({why(e)}); delete it and "
                             f"run `losstopo {stage} --out {self.out}` to make it again") from e
        return d
