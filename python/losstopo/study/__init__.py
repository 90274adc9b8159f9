"""The study of Yu & Morozov end to end, resumable stage by stage.

data -> SGD and L-BFGS-GSS populations -> snapshots at the train and test minima ->
the best K runs -> four solution sets -> kernel PCA -> paths for random pairs in each
set (training landscape; test landscape too for the test sets) -> figures, tables
and report.md. Everything lives in one output folder with a manifest; a rerun
continues where the last one stopped and never redoes a finished stage or pair.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from typing import Optional

import numpy as np

from .. import __version__
from .._io import Folder, UnsafePathError, config_hash, load_npz
from ..ensemble import Ensemble
from ..geometry import (bandwidth_sweep, centroid_distances, separation, set_geometry,
                       weight_stats)
from ..kpca import KernelPCA
from ..landscape import Landscape
from ..models import autoencoder, fcp
from ..paths import barrier_matrix
from ..report import render_report
from ..train import train

from .settings import (KINDS, LATER, NETWORK_PRESETS, NETWORKS, PRESETS,  # noqa: F401
                       STAGE_SETTINGS, TORCH_QUICK, in_hash, minimum)

SETS = ("SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test")
STAGES = ("train", "embed", "paths", "converge", "align", "curvature", "plot")
# The kernel-PCA pairs of sets and kernels, in the order of the embedding, the figures
# and the report (file names and the report's rows come from these lists, never from
# the keys of a file read back).
COMBOS = (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test"),
          ("LBFGS-train", "SGD-test"))
KERNELS = ("rbf", "linear")
METHODS = ("sgd", "lbfgs")
SLICES = ("SGD", "LBFGS", "plane")  # the curvature stage's 2-D slices
FIGURE_FORMATS = ("png", "pdf")  # what every figure of the study is written as


def landscapes_of(name: str) -> tuple:
    """The landscapes a set's paths run on: the training one, and the test one for the
    test sets."""
    return ("train", "test") if name.endswith("test") else ("train",)


def embedding_key(a: str, b: str, kernel: str) -> str:
    """The array name in embedding.npz (and the figure's stem) of one pair and kernel."""
    return f"{a}__{b}__{kernel}".replace("-", "_")


# Figure-name suffixes of the three barrier levels (plots.BARRIER_LEVELS).
_LEVEL_STEMS = {"barrier": "", "barrier_rel": "_minus_max", "barrier_mean": "_minus_mean"}


def _figure_stems() -> list:
    stems = ["fig2_loss_curves", "fig3_toy_lambdas", "fig3_toy_paths"]
    for lname in ("train", "test"):
        stems += [f"fig4_barriers_{lname}{_LEVEL_STEMS[lv]}" for lv in _LEVEL_STEMS]
        stems.append(f"loss_profiles_{lname}")
    stems += ["fig5_distances_train", "fig5_distances_test"]
    stems += [f"fig6_kpca_{embedding_key(a, b, k)}" for a, b in COMBOS for k in KERNELS]
    stems.append("fig6_kpca_bandwidth")
    stems.append("path_convergence")
    stems += ["sharpness_top", "sharpness_trace", "hessian_density"]
    stems += [f"slice_{label}" for label in SLICES] + ["slice_surface_SGD", "slice_surface_LBFGS"]
    return stems


def aligned_file(name: str) -> str:
    """The file of a set's aligned pairs (training landscape)."""
    return f"paths_{name}_train_aligned.npz"


def path_files() -> list:
    """(set, landscape, file name) of every path file, in the order of the stage."""
    return [(name, lname, f"paths_{name}_{lname}.npz")
            for name in SETS for lname in landscapes_of(name)]


def study_files() -> frozenset:
    """Every name a study can write (relative to its folder): the only names --force
    ever removes, and then only those its manifest lists."""
    names = {"manifest.json", "log.txt", "report.md", "sets.npz", "embedding.npz",
             "convergence.npz", "embedding_aligned.npz", "curvature.npz"}
    names |= {aligned_file(name) for name in SETS}
    for m in METHODS:
        names |= {f"ensemble_{m}.npz", f"checkpoint_{m}.npz"}
    names |= {fname for _, _, fname in path_files()}
    for stem in _figure_stems():
        names |= {f"figures/{stem}.{ext}" for ext in FIGURE_FORMATS}
    return frozenset(names)


# The settings' types (settings.py).
_INT, _FLOAT, _OPT_INT, _STR = (KINDS[k] for k in ("int", "float", "opt_int", "str"))
STAGE_RESULTS = {"curvature": ("curvature", "hessian_density", "slices")}


def _study_hash(cfg: dict) -> str:
    return config_hash({k: v for k, v in cfg.items() if in_hash(k, v)})

class StudyError(RuntimeError):
    """A study cannot go on (a changed configuration, a missing stage, ...)."""


def network(name: str):
    if name == "fcp":
        return fcp()
    if name == "autoencoder":
        return autoencoder()
    if name in ("lenet", "lstm"):
        try:
            from .. import torch_adapter

            torch_adapter.require_torch()
        except ImportError as e:
            raise StudyError(
                f"network {name!r} runs on the optional PyTorch adapter: "
                "pip install 'losstopo[torch]' (the native networks are fcp and autoencoder)"
            ) from e
        return None  # built per landscape by torch_module()
    raise StudyError(f"network: expected one of {NETWORKS}, got {name!r}")


def make_config(network_name="fcp", preset="quick", data="mnist", device="cpu",
                curve="fourier", **overrides):
    if preset not in PRESETS:
        raise StudyError(f"preset: expected one of {tuple(PRESETS)}, got {preset!r}")
    network(network_name)  # validates
    cfg = dict(PRESETS[preset], **NETWORK_PRESETS.get((preset, network_name), {}))
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in cfg:
            raise StudyError(f"unknown setting {k!r}")
        cfg[k] = v
    if not 1 <= cfg["keep"] <= cfg["runs"]:
        raise StudyError(f"keep: must lie in [1, runs={cfg['runs']}], got {cfg['keep']}")
    if cfg["keep"] < 2:
        raise StudyError("keep: need at least 2 solutions per set for paths")
    cfg.update(network=network_name, preset=preset, data=data, device=device, curve=curve)
    _check_config(cfg, "configuration")
    return cfg


def _check_config(cfg, where: str) -> None:
    """Raises StudyError unless ``cfg`` has every setting with the right type."""
    if not isinstance(cfg, dict):
        raise StudyError(f"{where}: the configuration is not a mapping")
    expected = set(_INT + _FLOAT + _OPT_INT + _STR)
    for k, v in LATER.items():
        cfg.setdefault(k, v)
    if set(cfg) != expected:
        missing, extra = sorted(expected - set(cfg)), sorted(set(cfg) - expected)
        raise StudyError(f"{where}: configuration settings missing {missing}, unknown {extra}")

    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    bad = [k for k in _INT if not is_int(cfg[k])]
    bad += [k for k in _FLOAT if isinstance(cfg[k], bool)
            or not isinstance(cfg[k], (int, float, np.integer, np.floating))]
    bad += [k for k in _OPT_INT if cfg[k] is not None and not is_int(cfg[k])]
    bad += [k for k in _STR if not isinstance(cfg[k], str)]
    if bad:
        raise StudyError(f"{where}: settings of the wrong type: "
                         + ", ".join(f"{k}={cfg[k]!r}" for k in bad))
    from ..paths import CURVES

    if cfg["curve"] not in CURVES:
        raise StudyError(f"{where}: curve must be one of {CURVES}, got {cfg['curve']!r}")
    for k in _OPT_INT:
        low = minimum(k)  # 0 pairs or solutions: no such stage
        if cfg[k] is not None and cfg[k] < low:
            raise StudyError(f"{where}: {k} must be an integer >= {low}, got {cfg[k]}")


def study_data(c: dict, progress: bool = True):
    """(train (X, y), test (X, y)) as the configuration ``c`` says."""
    net = network(c["network"])
    d_in = 784 if net is None else net.sizes[0]
    if c["data"] == "mnist":
        from ..datasets import mnist

        d = mnist(progress=progress)
        tr, te = d.train, d.test
    elif str(c["data"]).startswith("synthetic"):
        from ..datasets import synthetic

        n = (c["n_train"] or 2000) + (c["n_test"] or 500)
        X, y = synthetic(n, d_in, 10, seed=c["seed"])
        k = c["n_train"] or 2000
        tr, te = (X[:k], y[:k]), (X[k:], y[k:])
    else:
        raise StudyError(f"data: expected 'mnist' or 'synthetic', got {c['data']!r}")
    for key, part, flag in (("n_train", tr, "--n-train"), ("n_test", te, "--n-test")):
        if c[key] and c[key] > len(part[0]):
            raise StudyError(
                f"{flag} {c[key]}: the {c['data']} data has only {len(part[0])} "
                f"{key[2:]} samples; choose at most {len(part[0])} (or leave it out "
                "for all of them)")
    if c["n_train"]:
        tr = (tr[0][: c["n_train"]], tr[1][: c["n_train"]])
    if c["n_test"]:
        te = (te[0][: c["n_test"]], te[1][: c["n_test"]])
    if net is not None and net.loss == "mse":  # the autoencoder reconstructs its input
        tr, te = (tr[0], None), (te[0], None)
    return tr, te


def study_landscapes(c: dict, data, threads=None):
    """The training and test landscapes of configuration ``c`` on ``data``."""
    (Xtr, ytr), (Xte, yte) = data
    name = c["network"]
    net = network(name)
    if net is None:  # a PyTorch model
        from .. import torch_adapter

        module = getattr(torch_adapter, name)()
        return (torch_adapter.TorchLandscape(module, Xtr, ytr, threads=threads),
                torch_adapter.TorchLandscape(module, Xte, yte, threads=threads))
    dev = c["device"]
    threads = threads if dev == "cpu" else None
    return (Landscape(net, Xtr, ytr, device=dev, threads=threads),
            Landscape(net, Xte, yte, device=dev, threads=threads))


class Study:
    """One study in one output folder.

    Parameters
    ----------
    out : folder for every file of the study (created).
    config : from :func:`make_config`; None reads it from ``out``'s manifest.
    force : start afresh when the folder holds a study of another configuration (the
        files the old study wrote, as its manifest lists them, are removed; nothing else).
    quiet : no progress bars or log lines on stderr (the log file is kept).
    client : a ``dask.distributed.Client``, optional: the training groups and the path
        pairs run as tasks on its cluster (the numbers are those of one process; only
        this process writes the folder).
    threads : engine threads in this process (None: all cores); on a cluster each
        worker's engine uses the cores the worker was given. The numbers are those of
        any run with the same threads per engine.

    A Study holds an exclusive lock on its folder (``out/.lock``) until :meth:`close`
    (or the end of the process): a second run on the same folder stops at once.
    Every file it writes goes through one :class:`~losstopo._io.Folder`, which refuses
    symbolic links and paths outside the folder, and is listed in the manifest.
    """

    def __init__(self, out, config: Optional[dict] = None, force: bool = False,
                 quiet: bool = False, client=None, threads: Optional[int] = None,
                 settings: Optional[dict] = None):
        self.out = os.fspath(out)
        self.quiet = quiet
        self.client = client
        self.threads = threads
        self._lockfile = None
        self.log = None
        try:
            self.folder = Folder(self.out)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e
        except OSError as e:
            raise StudyError(f"{self.out}: cannot create the study's folder ({_why(e)}); "
                             "choose another --out") from e
        try:
            self._open(config, force, settings or {})
        except UnsafePathError as e:
            self.close()
            raise StudyError(str(e)) from e
        except OSError as e:
            self.close()
            raise StudyError(f"{self.out}: cannot write in the study's folder ({_why(e)}); "
                             "choose a writable --out") from e
        except BaseException:
            self.close()
            raise

    def _open(self, config, force, settings):
        self._lock()
        self.manifest_path = self.folder.path("manifest.json")
        manifest = self._read_manifest()
        if config is None:
            if manifest is None:
                raise StudyError(f"{self.out}: no study here yet (run `losstopo reproduce`)")
            config = manifest["config"]
        else:
            _check_config(config, "configuration")
        unknown = sorted(set(settings) - set(STAGE_SETTINGS))
        if unknown:
            raise StudyError(f"settings: only {sorted(STAGE_SETTINGS)} change a study's "
                             f"later stages, got {unknown}")
        changes = {k: v for k, v in settings.items() if v is not None}
        if changes:
            config = dict(config, **changes)
            _check_config(config, "configuration")
        chash = _study_hash(config)
        if manifest is not None and manifest["config_hash"] != chash:
            if config is manifest["config"]:
                raise StudyError(f"{self.manifest_path}: its configuration does not match its "
                                 "hash (edited by hand?); restore it, or start afresh with "
                                 "`losstopo reproduce --force`")
            if not force:
                raise StudyError(
                    f"{self.out} holds a study with another configuration "
                    f"({_diff(manifest['config'], config)}); use --force to start afresh "
                    "or choose another --out"
                )
            self._wipe(manifest)
            manifest = None
        reset = []
        if manifest is not None:
            # A stage's own settings: the study's unless given now; a stage whose
            # settings changed runs again, its earlier results gone.
            old = manifest["config"]
            config = dict(config)
            for k, stage in STAGE_SETTINGS.items():
                if settings.get(k) is None:
                    config[k] = old.get(k, LATER[k])
                elif old.get(k, LATER[k]) != config[k]:
                    manifest["stages"].pop(stage, None)
                    for key in STAGE_RESULTS.get(stage, ()):
                        manifest["results"].pop(key, None)
                    reset.append(f"{stage} ({k}: {old.get(k, LATER[k])} -> {config[k]})")
            manifest["config"] = config
        self.config = config
        if manifest is None:
            manifest = dict(config=config, config_hash=chash, stages={}, results={},
                            files=[], version=__version__)
        manifest.setdefault("files", [])
        self.manifest = manifest
        self._own("manifest.json", "log.txt")
        self.log = self._logger()
        for what in reset:
            self.log.info("settings changed: the %s stage runs again", what)
        if reset:  # its old results are gone from the study now, run or not
            self._write_manifest()
        self._data = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------- plumbing
    def _lock(self):
        """An exclusive OS lock on the folder for the life of this Study (released by
        close() or when the process ends)."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; studies there run unlocked
            return
        try:
            p = self.folder.path(".lock")
            fd = os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e
        except OSError as e:
            raise StudyError(f"{self.out}: cannot write in the study's folder ({_why(e)}); "
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

    def _read_manifest(self):
        p = self.manifest_path
        if not os.path.lexists(p):
            return None
        try:
            with open(p) as f:
                m = json.load(f)
        except (ValueError, OSError) as e:
            raise StudyError(f"{p}: unreadable ({_why(e)}); move it away or choose another "
                             "--out") from e
        problems = []
        if not isinstance(m, dict):
            problems.append("not a JSON object")
        else:
            for key, types in (("config", dict), ("config_hash", str), ("stages", dict),
                               ("results", dict), ("files", list)):
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
        _check_config(m["config"], p)
        return m

    def _write_manifest(self):
        try:
            self.folder.write_text("manifest.json",
                                   json.dumps(self.manifest, indent=1, sort_keys=True))
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def _own(self, *names):
        """Lists ``names`` in the manifest (before they are written): --force removes
        exactly these."""
        files = self.manifest["files"]
        new = [n for n in names if n not in files]
        for n in new:
            if n not in study_files():  # every name comes from the code
                raise ValueError(f"{n!r} is not one of the study's file names")
            files.append(n)
        if new or not os.path.exists(self.manifest_path):
            self._write_manifest()

    def _wipe(self, manifest):
        """Removes the files the old study wrote: the names its manifest lists (a
        manifest of an older version without a list: the names a study writes), each
        only if it is one of the code's own names and a plain file, plus the leftover
        temporaries of their atomic writes; the figures folder only if then empty."""
        listed = manifest.get("files")
        names = study_files() if listed is None else study_files() & set(listed)
        for name in sorted(names - {"manifest.json"}) + ["manifest.json"]:
            try:
                p = self.folder.path(name)
            except UnsafePathError:
                continue  # a link or a folder where a file was: not ours to remove
            d, base = os.path.split(p)
            for q in [p] + glob.glob(os.path.join(glob.escape(d),
                                                  glob.escape(f".{base}.") + "*.tmp")):
                if os.path.isfile(q) and not os.path.islink(q):
                    os.remove(q)
        figs = os.path.join(self.out, "figures")
        if os.path.isdir(figs) and not os.path.islink(figs) and not os.listdir(figs):
            os.rmdir(figs)

    def _logger(self):
        log = logging.getLogger(f"losstopo.study.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        self._logstream = self.folder.open_append("log.txt")
        fh = logging.StreamHandler(self._logstream)
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
        if not self.quiet:
            sh = logging.StreamHandler()
            sh.setFormatter(logging.Formatter("[losstopo] %(message)s"))
            log.addHandler(sh)
        return log

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

    def path(self, name) -> str:
        """The checked path of one of the study's files (refuses links and escapes)."""
        try:
            return self.folder.path(name)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def _write(self, name, kind, payload):
        """Every write of the study: listed in the manifest first, then written through
        the folder's checks."""
        self._own(name)
        try:
            if kind == "text":
                return self.folder.write_text(name, payload)
            if kind == "bytes":
                return self.folder.write_bytes(name, payload)
            return self.folder.savez(name, payload)
        except UnsafePathError as e:
            raise StudyError(str(e)) from e

    def _load(self, name, stage, check=None) -> dict:
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
            raise StudyError(f"{p}: unreadable or not the study's ({_why(e)}); delete it and "
                             f"run `losstopo {stage} --out {self.out}` to make it again") from e
        return d

    def _ensemble(self, method) -> Ensemble:
        p = self.path(f"ensemble_{method}.npz")
        try:
            return Ensemble.load(p)
        except (ValueError, OSError) as e:
            raise StudyError(f"{e}; delete it and run `losstopo train --out {self.out}` to "
                             "train it again") from e

    def done(self, stage) -> bool:
        return bool(self.manifest["stages"].get(stage))

    def _finish(self, stage, **results):
        self.manifest["stages"][stage] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.manifest["results"].update(results)
        self._write_manifest()
        peak = _peak_memory_mb()
        if peak is not None:
            self.log.info("%s: finished; peak memory of this process so far %.0f MB", stage,
                          peak)

    # ----------------------------------------------------------------- data
    def data(self):
        """(train (X, y), test (X, y)) as the configuration says."""
        if self._data is None:
            self._data = study_data(self.config, progress=not self.quiet)
        return self._data

    def landscapes(self):
        return study_landscapes(self.config, self.data(), self.threads)

    # --------------------------------------------------------------- stages
    def run(self, stages=STAGES):
        t0 = time.perf_counter()
        for stage in stages:
            getattr(self, f"stage_{stage}")()
        self.log.info("study finished in %.1f s; report: %s", time.perf_counter() - t0,
                      self.path("report.md"))

    def _trained(self, method) -> bool:
        return bool(self.manifest["stages"].get(f"train_{method}")) and os.path.exists(
            self.path(f"ensemble_{method}.npz"))

    def stage_train(self):
        if self.done("train") and os.path.exists(self.path("sets.npz")) and all(
                self._trained(m) for m in METHODS):
            self.log.info("train: done already")
            return
        c = self.config
        # The inputs first: a finished population's file is checked before the other
        # population trains (not found broken after hours), and the data's sizes.
        for method in METHODS:
            if self._trained(method):
                self._ensemble(method)
        net = network(c["network"])
        train_ls, test_ls = self.landscapes()
        # Independent initializations for the two optimizers, as in the paper.
        seeds = {"sgd": 2 * c["seed"], "lbfgs": 2 * c["seed"] + 1}
        for method, epochs in (("sgd", c["sgd_epochs"]), ("lbfgs", c["lbfgs_iters"])):
            if self._trained(method):
                continue
            target = f"ensemble_{method}.npz"
            checkpoint = f"checkpoint_{method}.npz"
            self._own(checkpoint, target)
            self.log.info("train: %s, %d runs, %d %s", method, c["runs"], epochs,
                          "epochs" if method == "sgd" else "iterations")
            if self.client is not None and not c["train_group"]:
                self.log.info("train: in this process, all runs in one batch (set "
                              "--train-group to spread training over the cluster)")
            t = time.perf_counter()
            try:
                ens = train(net, train_ls, test_ls, method=method, runs=c["runs"],
                            seed=seeds[method], epochs=epochs, lr=c["lr"],
                            batch_size=c["batch_size"], checkpoint=self.path(checkpoint),
                            progress=not self.quiet, group=c["train_group"],
                            client=self.client if c["train_group"] else None)
            except ValueError as e:
                if "checkpoint" not in str(e):
                    raise
                raise StudyError(str(e)) from e
            ens.save(self.path(target))
            self.log.info("train: %s finished in %.1f s", method, time.perf_counter() - t)
            self._finish(f"train_{method}")
        sgd = self._ensemble("sgd").select(c["keep"])
        lb = self._ensemble("lbfgs").select(c["keep"])
        sets = {"SGD-train": sgd.theta_best_train, "SGD-test": sgd.theta_best_test,
                "LBFGS-train": lb.theta_best_train, "LBFGS-test": lb.theta_best_test}
        self._write("sets.npz", "npz", {k.replace("-", "_"): v for k, v in sets.items()})
        table1 = dict(
            train_lbfgs=float(np.mean(lb.best_train_loss)),
            train_sgd=float(np.mean(sgd.best_train_loss)),
            test_lbfgs=float(np.nanmean(lb.best_test_loss)),
            test_sgd=float(np.nanmean(sgd.best_test_loss)),
        )
        stats = {k: weight_stats(v) for k, v in sets.items()}
        self._finish("train", table1=table1, weight_stats=stats)

    def sets(self) -> dict:
        if not os.path.exists(self.path("sets.npz")):
            raise StudyError(f"{self.out}: the train stage has not finished "
                             f"(run `losstopo train --out {self.out}`)")
        keys = {k.replace("-", "_") for k in SETS}

        def check(d):
            if set(d) != keys:
                raise ValueError(f"arrays {sorted(d)}, expected {sorted(keys)}")
            shapes = {d[k].shape[1:] for k in keys if d[k].ndim == 2}
            if len(shapes) != 1 or any(d[k].ndim != 2 or len(d[k]) < 2
                                       or d[k].dtype.kind != "f" for k in keys):
                raise ValueError("expected four float arrays (runs, parameters) of one width")

        d = self._load("sets.npz", "train", check)
        return {k: d[k.replace("-", "_")] for k in SETS}

    def stage_embed(self):
        if self.done("embed"):
            self.log.info("embed: done already")
            return
        sets = self.sets()
        arrays, seps, dists = {}, {}, {}
        for a, b in COMBOS:
            X = np.concatenate([sets[a], sets[b]])
            for kernel in KERNELS:
                emb = KernelPCA(2, kernel=kernel).fit_transform(X)
                arrays[embedding_key(a, b, kernel)] = emb
                seps[f"{a}|{b}|{kernel}"] = separation(emb[: len(sets[a])], emb[len(sets[a]):])
        for a, b in (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test")):
            da, db = centroid_distances(sets[a], sets[b])
            dists[a], dists[b] = da.tolist(), db.tolist()
        # The separation against the RBF bandwidth, and the sets' scales beside it.
        sweep = {f"{a}|{b}": bandwidth_sweep(sets[a], sets[b]) for a, b in COMBOS}
        scales = {name: set_geometry(sets[name]) for name in SETS}
        self._write("embedding.npz", "npz", arrays)
        self.log.info("embed: PC1 separation (AUC) %s",
                      {k: round(v["auc"], 3) for k, v in seps.items()})
        self._finish("embed", separation=seps, centroid_distances=dists,
                     bandwidth=sweep, set_geometry=scales)

    def _load_paths(self, fname) -> dict:
        def check(d):
            for k in ("barrier", "done", "losses"):
                if k not in d:
                    raise ValueError(f"no array {k!r}")
            n = len(d["done"])
            if (d["done"].dtype != bool or d["barrier"].shape != (n,)
                    or d["losses"].ndim != 2 or len(d["losses"]) != n):
                raise ValueError("arrays of inconsistent shapes or types")

        return self._load(fname, "paths", check)

    def _path_kwargs(self, ls) -> dict:
        """The path settings of the configuration for barrier_matrix on ``ls``.
        Stochastic steps draw path_batch samples; a landscape with no more samples than
        that runs every step on all of them."""
        c = self.config
        kw = dict(n_points=c["n_points"], n_modes=c["n_modes"], lam=c["lam"], lr=c["path_lr"],
                  curve=c["curve"], steps=c["path_steps"], refine=True)
        if c["path_batch"] is not None and c["path_batch"] < ls.num_samples:
            kw["batch_size"] = c["path_batch"]
        return kw

    def stage_paths(self):
        if self.done("paths"):
            self.log.info("paths: done already")
            return
        c = self.config
        sets = self.sets()
        for _, _, fname in path_files():  # a broken file stops us now, not hours in
            if os.path.exists(self.path(fname)):
                self._load_paths(fname)
        train_ls, test_ls = self.landscapes()
        summary = {}
        for name, lname, fname in path_files():
            ls = train_ls if lname == "train" else test_ls
            kw = self._path_kwargs(ls)
            key = f"{name}@{lname}"
            self.log.info("paths: %s, %s pairs on the %s landscape", name, c["pairs"], lname)
            self._own(fname)
            try:
                res = barrier_matrix(ls, sets[name], pairs=c["pairs"], seed=c["seed"],
                                     out=self.path(fname), progress=not self.quiet,
                                     client=self.client, **kw)
            except ValueError as e:
                if "out " not in str(e):
                    raise
                raise StudyError(str(e)) from e
            b = res["barrier"]
            summary[key] = dict(
                median=float(np.median(b)), q25=float(np.percentile(b, 25)),
                q75=float(np.percentile(b, 75)), mean=float(np.mean(b)),
                median_rel=float(np.median(res["barrier_rel"])),
                median_mean=float(np.median(res["barrier_mean"])),
                median_refined=float(np.median(res["barrier_refined"])),
                median_straight=float(np.median(res["straight_barrier"])),
                pairs=int(len(b)),
            )
        self._finish("paths", barriers=summary)

    def _wanted(self, stage: str, setting: str) -> bool:
        """Whether an optional stage runs: asked for by its setting and not done yet."""
        if not self.config[setting]:
            self.log.info("%s: not asked for (--%s)", stage, setting.replace("_", "-"))
            return False
        if self.done(stage):
            self.log.info("%s: done already", stage)
            return False
        return True

    def stage_converge(self):
        """Path convergence: the first ``converge_pairs`` pairs of each set's paths on
        the training landscape, their barriers after each budget of STEPS and the
        minimax reference (convergence.npz; results "convergence")."""
        from ..convergence import STEPS, path_convergence
        from ..paths import choose_pairs

        c = self.config
        if not self._wanted("converge", "converge_pairs"):
            return
        sets = self.sets()
        train_ls, _ = self.landscapes()
        arrays, summary = {}, {}
        self._own("convergence.npz")
        for name in SETS:
            idx = choose_pairs(c["pairs"], len(sets[name]), c["seed"])[: c["converge_pairs"]]
            self.log.info("converge: %s, %d pairs, %s steps and the minimax reference", name,
                          len(idx), "/".join(map(str, STEPS)))
            th = sets[name]
            res = path_convergence(train_ls, th[idx[:, 0]], th[idx[:, 1]], steps=STEPS,
                                   n_points=c["n_points"], n_modes=c["n_modes"], lam=c["lam"],
                                   lr=c["path_lr"], curve=c["curve"], progress=not self.quiet)
            key = name.replace("-", "_")
            for k in ("barrier", "barrier_refined", "reference", "straight_barrier"):
                arrays[f"{key}__{k}"] = res[k]
            arrays[f"{key}__pairs"] = idx
            summary[name] = dict(
                steps=[int(k) for k in res["steps"]],
                median=[float(v) for v in np.median(res["barrier_refined"], axis=0)],
                reference=float(np.median(res["reference"])), pairs=int(len(idx)))
        self._write("convergence.npz", "npz", arrays)
        self._finish("converge", convergence=summary)

    def stage_align(self):
        """Barriers with the second endpoint of each pair aligned to the first (weight
        matching) for the first ``align_pairs`` pairs of each set on the training
        landscape, beside the same pairs unaligned; RBF kernel PCA of the solutions
        aligned to a common reference (results "alignment", "aligned_separation")."""
        from ..align import align_to_common
        from ..models import MLP

        c = self.config
        if not self._wanted("align", "align_pairs"):
            return
        net = network(c["network"])
        if not isinstance(net, MLP):
            self.log.info("align: weight matching needs an MLP; %s is not one", c["network"])
            self._finish("align")
            return
        sets = self.sets()
        train_ls, _ = self.landscapes()
        kw = self._path_kwargs(train_ls)
        summary = {}
        for name in SETS:
            plain = self._load_paths(f"paths_{name}_train.npz")
            k = min(c["align_pairs"], len(plain["pairs"]))
            pairs = plain["pairs"][:k]
            if not plain["done"][:k].all():
                raise StudyError(f"{self.out}: the paths stage has not finished (run "
                                 f"`losstopo paths --out {self.out}`)")
            self.log.info("align: %s, %d pairs aligned on the train landscape", name, k)
            fname = aligned_file(name)
            self._own(fname)
            res = barrier_matrix(train_ls, sets[name], pairs=pairs, seed=c["seed"],
                                 out=self.path(fname), progress=not self.quiet, align=True,
                                 client=self.client, **kw)
            summary[name] = dict(
                pairs=int(k), median=float(np.median(res["barrier"])),
                median_unaligned=float(np.median(plain["barrier"][:k])),
                median_rel=float(np.median(res["barrier_rel"])),
                median_rel_unaligned=float(np.median(plain["barrier_rel"][:k])),
                distance_before=float(np.median(res["distance_before"])),
                distance_after=float(np.median(res["distance_after"])))
        arrays, seps = {}, {}
        for a, b in COMBOS:
            al = align_to_common(net, np.concatenate([sets[a], sets[b]])).theta
            emb = KernelPCA(2, kernel="rbf").fit_transform(al)
            arrays[embedding_key(a, b, "rbf")] = emb
            seps[f"{a}|{b}|rbf"] = separation(emb[: len(sets[a])], emb[len(sets[a]):])
        self._write("embedding_aligned.npz", "npz", arrays)
        self._finish("align", alignment=summary, aligned_separation=seps)

    def stage_curvature(self):
        """Sharpness of the first ``curvature_solutions`` solutions of each set on the
        training landscape (top Hessian eigenvalue by batched Lanczos, Hutchinson trace
        with its standard error), the spectral density at each optimizer's solution of
        lowest training loss (of its train set), and 2-D slices of ``slice_grid``^2
        points: filter-normalized through those two solutions, and the plane through
        the two best SGD solutions and the best L-BFGS solution (curvature.npz;
        results "curvature", "hessian_density", "slices")."""
        from .. import curvature
        from ..slices import slice2d

        c = self.config
        if not self._wanted("curvature", "curvature_solutions"):
            return
        sets = self.sets()
        train_ls, _ = self.landscapes()
        if not hasattr(train_ls, "hessian_vector"):
            self.log.info("curvature: the %s landscape offers no Hessian-vector products",
                          c["network"])
            self._finish("curvature")
            return
        arrays, summary = {}, {}
        self._own("curvature.npz")
        for name in SETS:
            th = sets[name][: c["curvature_solutions"]].astype(np.float64)
            self.log.info("curvature: %s, top eigenvalue and trace of %d solutions", name,
                          len(th))
            top = curvature.sharpness(train_ls, th, tol=1e-3, max_steps=100, seed=c["seed"],
                                      progress=not self.quiet)
            traces = [curvature.hessian_trace(train_ls, t, probes=32, batch=16,
                                              seed=c["seed"]) for t in th]
            key = name.replace("-", "_")
            arrays[f"{key}__top"] = top
            arrays[f"{key}__trace"] = np.array([t for t, _ in traces])
            arrays[f"{key}__trace_se"] = np.array([e for _, e in traces])
            summary[name] = dict(solutions=int(len(th)), median_top=float(np.median(top)),
                                 median_trace=float(np.median(arrays[f"{key}__trace"])),
                                 median_trace_se=float(np.median(arrays[f"{key}__trace_se"])),
                                 top=[float(v) for v in top])
        # Each optimizer's train-set solutions, lowest training loss first.
        ranked = {opt: sets[f"{opt}-train"][np.argsort(train_ls.loss(sets[f"{opt}-train"]))]
                  for opt in ("SGD", "LBFGS")}
        densities = {}
        for opt in ("SGD", "LBFGS"):  # at the solution of lowest training loss
            best = ranked[opt][0].astype(np.float64)
            d = curvature.spectral_density(train_ls, best, probes=4, steps=48, seed=c["seed"])
            key = f"density__{opt}"
            arrays[f"{key}__nodes"], arrays[f"{key}__weights"] = d.nodes, d.weights
            arrays[f"{key}__grid"], arrays[f"{key}__density"] = d.grid, d.density
            densities[opt] = dict(sigma=d.sigma, trace=d.trace, min=float(d.nodes.min()),
                                  max=float(d.nodes.max()))
        slices = {}
        n = c["slice_grid"] or 51
        sgd, lbfgs = ranked["SGD"], ranked["LBFGS"]
        for label, kw in (("SGD", dict(theta=sgd[0], directions="filter")),
                          ("LBFGS", dict(theta=lbfgs[0], directions="filter")),
                          ("plane", dict(theta=None, directions="plane",
                                         solutions=np.stack([sgd[0], sgd[1], lbfgs[0]])))):
            self.log.info("curvature: %d x %d slice (%s)", n, n, label)
            theta = None if kw["theta"] is None else kw["theta"].astype(np.float64)
            sl = slice2d(train_ls, theta, kw["directions"], n=n, seed=c["seed"],
                         solutions=kw.get("solutions"), progress=not self.quiet)
            arrays[f"slice__{label}__loss"] = sl.loss
            if sl.accuracy is not None:
                arrays[f"slice__{label}__accuracy"] = sl.accuracy
            arrays[f"slice__{label}__xs"], arrays[f"slice__{label}__ys"] = sl.xs, sl.ys
            slices[label] = dict(kind=sl.kind, marks={k: list(v) for k, v in sl.marks.items()},
                                 min_loss=float(sl.loss.min()), max_loss=float(sl.loss.max()))
        self._write("curvature.npz", "npz", arrays)
        self._finish("curvature", curvature=summary, hessian_density=densities, slices=slices)

    def _curvature_figures(self, plots) -> list:
        """Sharpness histograms, the spectral densities and the slices, from
        curvature.npz (checked against the stage's own names)."""
        from ..curvature import SpectralDensity
        from ..slices import Slice

        res = self.manifest["results"]
        names = [n for n in SETS if n in res["curvature"]]
        want = {f"{n.replace('-', '_')}__{k}" for n in names for k in ("top", "trace")}
        want |= {f"slice__{lb}__{k}" for lb in res.get("slices", {}) for k in ("loss", "xs", "ys")}

        def check(d):
            missing = sorted(want - set(d))
            if missing:
                raise ValueError(f"no arrays {missing[:4]}")

        d = self._load("curvature.npz", "curvature", check)
        written = []
        tops = {n: d[f"{n.replace('-', '_')}__top"] for n in names}
        traces = {n: d[f"{n.replace('-', '_')}__trace"] for n in names}
        written += self._figure(plots.plot_histograms(
            tops, "largest Hessian eigenvalue", "sharpness of the solutions", log=True),
            "sharpness_top")
        written += self._figure(plots.plot_histograms(
            traces, "Hessian trace (Hutchinson)", "sharpness of the solutions"),
            "sharpness_trace")
        dens = {}
        for opt in ("SGD", "LBFGS"):
            k = f"density__{opt}"
            if opt in res.get("hessian_density", {}) and f"{k}__grid" in d:
                dens[opt] = SpectralDensity(d[f"{k}__nodes"], d[f"{k}__weights"], d[f"{k}__grid"],
                                            d[f"{k}__density"], 0.0, 0)
        if dens:
            written += self._figure(plots.plot_spectral_density(dens), "hessian_density")
        for label in SLICES:  # the code's order, never the manifest's
            info = res.get("slices", {}).get(label)
            if info is None:
                continue
            marks = {k: tuple(v) for k, v in info["marks"].items()}
            if label == "plane":  # the plane's three solutions, by their sets
                marks = dict(zip(("SGD 1st", "SGD 2nd", "L-BFGS 1st"), marks.values()))
            sl = Slice(None, None, d[f"slice__{label}__xs"], d[f"slice__{label}__ys"],
                       d[f"slice__{label}__loss"], d.get(f"slice__{label}__accuracy"), marks,
                       info["kind"])
            title = (f"best {label} solution, filter-normalized directions" if label != "plane"
                     else "the plane of two SGD and one L-BFGS solution")
            written += self._figure(plots.plot_slice(sl, title=title), f"slice_{label}")
            if label != "plane":
                written += self._figure(plots.plot_slice_surface(sl, title=title),
                                        f"slice_surface_{label}")
        return written

    def _load_embedding(self, sets) -> dict:
        """embedding.npz, checked: exactly the code's own keys, each (na + nb, 2)."""
        expected = {embedding_key(a, b, k): (a, b) for a, b in COMBOS for k in KERNELS}

        def check(d):
            if set(d) != set(expected):
                raise ValueError(f"arrays {sorted(d)[:8]}, expected {sorted(expected)}")
            for key, (a, b) in expected.items():
                if d[key].shape != (len(sets[a]) + len(sets[b]), 2):
                    raise ValueError(f"{key}: shape {d[key].shape}")

        return self._load("embedding.npz", "embed", check)

    def _figure(self, fig, stem) -> list:
        """fig as figures/<stem>.png and .pdf, written through the folder's checks."""
        from ..plots import figure_bytes

        names = []
        for ext, data in figure_bytes(fig, FIGURE_FORMATS).items():
            name = f"figures/{stem}.{ext}"
            self._write(name, "bytes", data)
            names.append(name)
        return names

    def stage_plot(self):
        from .. import plots
        from ..analytic import toy_gaussians
        from ..toy import curve_families, lambda_paths, objective_paths

        # Every input is read and checked before the first figure is drawn.
        ens = {"SGD": self._ensemble("sgd"), "LBFGS": self._ensemble("lbfgs")}
        paths = {(name, lname): self._load_paths(fname)
                 for name, lname, fname in path_files()
                 if os.path.exists(self.path(fname))}
        emb = sets = None
        if os.path.exists(self.path("embedding.npz")):
            sets = self.sets()
            emb = self._load_embedding(sets)
        written = []
        written += self._figure(plots.plot_loss_curves(ens), "fig2_loss_curves")
        toy_paths, toy_summary = lambda_paths()
        written += self._figure(plots.plot_toy_lambdas(toy_gaussians(), toy_paths),
                                "fig3_toy_lambdas")
        res = objective_paths()
        written += self._figure(plots.plot_landscape_paths(toy_gaussians(), res), "fig3_toy_paths")
        for lname in ("train", "test"):
            bars, profiles = {lv: {} for lv in _LEVEL_STEMS}, {}
            for name in SETS:
                d = paths.get((name, lname))
                if d is not None:
                    for lv in _LEVEL_STEMS:
                        if lv in d:
                            bars[lv][name] = d[lv][d["done"]]
                    if d["done"].any():
                        i = int(np.argmax(d["done"]))
                        profiles[name] = (np.linspace(0, 1, d["losses"].shape[1]), d["losses"][i])
            for lv, stem in _LEVEL_STEMS.items():
                if bars[lv]:
                    written += self._figure(
                        plots.plot_barrier_histograms(bars[lv], log=lv == "barrier", level=lv),
                        f"fig4_barriers_{lname}{stem}")
            if profiles:
                written += self._figure(plots.plot_loss_profiles(profiles),
                                        f"loss_profiles_{lname}")
        dists = self.manifest["results"].get("centroid_distances", {})
        for kind in ("train", "test"):
            sel = {k: dists[k] for k in SETS if k.endswith(kind) and k in dists}
            if sel:
                written += self._figure(plots.plot_distance_histograms(sel),
                                        f"fig5_distances_{kind}")
        if emb is not None:
            for a, b in COMBOS:  # names from the code's own lists, never from the file
                na = len(sets[a])
                for kernel in KERNELS:
                    key = embedding_key(a, b, kernel)
                    E = emb[key]
                    fig = plots.plot_embedding({a: E[:na], b: E[na:]},
                                               title=f"{kernel} kernel PCA")
                    written += self._figure(fig, f"fig6_kpca_{key}")
        conv = self.manifest["results"].get("convergence")
        if conv:
            written += self._figure(plots.plot_convergence(
                {k: conv[k] for k in SETS if k in conv}), "path_convergence")
        if self.done("curvature") and self.manifest["results"].get("curvature"):
            written += self._curvature_figures(plots)
        sweep = self.manifest["results"].get("bandwidth")
        if sweep:
            written += self._figure(plots.plot_bandwidth(
                {f"{a} + {b}": sweep[f"{a}|{b}"] for a, b in COMBOS if f"{a}|{b}" in sweep}),
                "fig6_kpca_bandwidth")
        self.log.info("plot: %d files in %s", len(written), os.path.join(self.out, "figures"))
        self._finish("plot", figures=written, toy=toy_summary, curves=curve_families())
        self.report()

    # --------------------------------------------------------------- report
    def report(self) -> str:
        try:
            text = render_report(self.config, self.manifest["results"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise StudyError(f"{self.manifest_path}: results of the wrong form ({_why(e)}); "
                             "move it away and rerun the study") from e
        self._write("report.md", "text", text)
        return text


def _peak_memory_mb():
    """The peak resident memory of this process in MB (None where not known)."""
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes / KiB


def _why(e: BaseException) -> str:
    """An exception's message without the traceback, for one-line errors."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _diff(old, new) -> str:
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
