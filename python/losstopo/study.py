"""The study of Yu & Morozov end to end, resumable stage by stage.

data -> SGD and L-BFGS-GSS populations -> snapshots at the train and test minima ->
the best K runs -> four solution sets -> kernel PCA -> paths for random pairs in each
set (training landscape; test landscape too for the test sets) -> figures, tables
and report.md. Everything lives in one output folder with a manifest; a rerun
continues where the last one stopped and never redoes a finished stage or pair.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Optional

import numpy as np

from . import __version__
from ._io import atomic_savez, atomic_write_text, config_hash, load_npz
from .ensemble import Ensemble
from .geometry import centroid_distances, separation, weight_stats
from .kpca import KernelPCA
from .landscape import Landscape
from .models import autoencoder, fcp
from .paths import barrier_matrix, find_path
from .report import render_report
from .train import train

PRESETS = {
    # Every stage and figure in a few minutes on a 2-core CPU: an MNIST subset,
    # small populations, few pairs, short paths.
    "quick": dict(n_train=5000, n_test=1000, runs=8, keep=6, sgd_epochs=30, lbfgs_iters=150,
                  lr=0.1, batch_size=64, pairs=5, n_points=20, n_modes=10, lam=1e-4,
                  path_lr=1e-3, path_steps=20, seed=0),
    # The paper's settings (SGD's epochs are not reported; 100 is our default).
    "paper": dict(n_train=None, n_test=None, runs=75, keep=48, sgd_epochs=100,
                  lbfgs_iters=1000, lr=0.1, batch_size=64, pairs=300, n_points=50,
                  n_modes=10, lam=1e-4, path_lr=1e-3, path_steps=100, seed=0),
}
NETWORKS = ("fcp", "autoencoder", "lenet", "lstm")
SETS = ("SGD-train", "SGD-test", "LBFGS-train", "LBFGS-test")
STAGES = ("train", "embed", "paths", "plot")

class StudyError(RuntimeError):
    """A study cannot go on (a changed configuration, a missing stage, ...)."""


def network(name: str):
    if name == "fcp":
        return fcp()
    if name == "autoencoder":
        return autoencoder()
    if name in ("lenet", "lstm"):
        try:
            from . import torch_adapter

            torch_adapter._torch()
        except ImportError as e:
            raise StudyError(
                f"network {name!r} runs on the optional PyTorch adapter: "
                "pip install 'losstopo[torch]' (the native networks are fcp and autoencoder)"
            ) from e
        return None  # built per landscape by torch_module()
    raise StudyError(f"network: expected one of {NETWORKS}, got {name!r}")


def make_config(network_name="fcp", preset="quick", data="mnist", device="cpu", **overrides):
    if preset not in PRESETS:
        raise StudyError(f"preset: expected one of {tuple(PRESETS)}, got {preset!r}")
    network(network_name)  # validates
    cfg = dict(PRESETS[preset])
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
    cfg.update(network=network_name, preset=preset, data=data, device=device)
    return cfg


class Study:
    """One study in one output folder.

    Parameters
    ----------
    out : folder for every file of the study (created).
    config : from :func:`make_config`; None reads it from ``out``'s manifest.
    force : start afresh when the folder holds a study of another configuration.
    quiet : no progress bars or log lines on stderr (the log file is kept).
    """

    def __init__(self, out, config: Optional[dict] = None, force: bool = False,
                 quiet: bool = False):
        self.out = os.fspath(out)
        os.makedirs(self.out, exist_ok=True)
        self.quiet = quiet
        self.manifest_path = os.path.join(self.out, "manifest.json")
        manifest = self._read_manifest()
        if config is None:
            if manifest is None:
                raise StudyError(f"{self.out}: no study here yet (run `losstopo reproduce`)")
            config = manifest["config"]
        chash = config_hash(config)
        if manifest is not None and manifest["config_hash"] != chash:
            if not force:
                raise StudyError(
                    f"{self.out} holds a study with another configuration "
                    f"({_diff(manifest['config'], config)}); use --force to start afresh "
                    "or choose another --out"
                )
            self._wipe()
            manifest = None
        self.config = config
        if manifest is None:
            manifest = dict(config=config, config_hash=chash, stages={}, results={},
                            version=__version__)
        self.manifest = manifest
        self._write_manifest()
        self.log = self._logger()
        self._data = None

    # ------------------------------------------------------------- plumbing
    def _read_manifest(self):
        if not os.path.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path) as f:
                m = json.load(f)
            m["config_hash"], m["config"], m["stages"]
        except (ValueError, KeyError, OSError) as e:
            raise StudyError(f"{self.manifest_path}: unreadable ({e}); use --force") from e
        return m

    def _write_manifest(self):
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1, sort_keys=True))

    def _wipe(self):
        for name in os.listdir(self.out):
            p = os.path.join(self.out, name)
            if name in ("figures",) and os.path.isdir(p):
                shutil.rmtree(p)
            elif name.endswith((".npz", ".json", ".md", ".txt", ".tmp")):
                os.remove(p)

    def _logger(self):
        log = logging.getLogger(f"losstopo.study.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        fh = logging.FileHandler(os.path.join(self.out, "log.txt"))
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
        if not self.quiet:
            sh = logging.StreamHandler()
            sh.setFormatter(logging.Formatter("[losstopo] %(message)s"))
            log.addHandler(sh)
        return log

    def close(self):
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    def path(self, name) -> str:
        return os.path.join(self.out, name)

    def done(self, stage) -> bool:
        return bool(self.manifest["stages"].get(stage))

    def _finish(self, stage, **results):
        self.manifest["stages"][stage] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.manifest["results"].update(results)
        self._write_manifest()

    # ----------------------------------------------------------------- data
    def data(self):
        """(train (X, y), test (X, y)) as the configuration says."""
        if self._data is not None:
            return self._data
        c = self.config
        net = network(c["network"])
        d_in = 784 if net is None else net.sizes[0]
        if c["data"] == "mnist":
            from .datasets import mnist

            d = mnist(progress=not self.quiet)
            tr, te = d.train, d.test
        elif str(c["data"]).startswith("synthetic"):
            from .datasets import synthetic

            n = (c["n_train"] or 2000) + (c["n_test"] or 500)
            X, y = synthetic(n, d_in, 10, seed=c["seed"])
            k = c["n_train"] or 2000
            tr, te = (X[:k], y[:k]), (X[k:], y[k:])
        else:
            raise StudyError(f"data: expected 'mnist' or 'synthetic', got {c['data']!r}")
        if c["n_train"]:
            tr = (tr[0][: c["n_train"]], tr[1][: c["n_train"]])
        if c["n_test"]:
            te = (te[0][: c["n_test"]], te[1][: c["n_test"]])
        if net is not None and net.loss == "mse":  # the autoencoder reconstructs its input
            tr, te = (tr[0], None), (te[0], None)
        self._data = (tr, te)
        return self._data

    def landscapes(self):
        (Xtr, ytr), (Xte, yte) = self.data()
        name = self.config["network"]
        net = network(name)
        if net is None:  # a PyTorch model
            from . import torch_adapter

            module = getattr(torch_adapter, name)()
            return (torch_adapter.TorchLandscape(module, Xtr, ytr),
                    torch_adapter.TorchLandscape(module, Xte, yte))
        return (Landscape(net, Xtr, ytr, device=self.config["device"]),
                Landscape(net, Xte, yte, device=self.config["device"]))

    # --------------------------------------------------------------- stages
    def run(self, stages=STAGES):
        t0 = time.perf_counter()
        for stage in stages:
            getattr(self, f"stage_{stage}")()
        self.log.info("study finished in %.1f s; report: %s", time.perf_counter() - t0,
                      self.path("report.md"))

    def stage_train(self):
        if self.done("train"):
            self.log.info("train: done already")
            return
        c = self.config
        net = network(c["network"])
        train_ls, test_ls = self.landscapes()
        # Independent initializations for the two optimizers, as in the paper.
        seeds = {"sgd": 2 * c["seed"], "lbfgs": 2 * c["seed"] + 1}
        for method, epochs in (("sgd", c["sgd_epochs"]), ("lbfgs", c["lbfgs_iters"])):
            target = self.path(f"ensemble_{method}.npz")
            if os.path.exists(target) and self.manifest["stages"].get(f"train_{method}"):
                continue
            self.log.info("train: %s, %d runs, %d %s", method, c["runs"], epochs,
                          "epochs" if method == "sgd" else "iterations")
            t = time.perf_counter()
            ens = train(net, train_ls, test_ls, method=method, runs=c["runs"], seed=seeds[method],
                        epochs=epochs, lr=c["lr"], batch_size=c["batch_size"],
                        checkpoint=self.path(f"checkpoint_{method}.npz"),
                        progress=not self.quiet)
            ens.save(target)
            self.log.info("train: %s finished in %.1f s", method, time.perf_counter() - t)
            self._finish(f"train_{method}")
        sgd = Ensemble.load(self.path("ensemble_sgd.npz")).select(c["keep"])
        lb = Ensemble.load(self.path("ensemble_lbfgs.npz")).select(c["keep"])
        sets = {"SGD-train": sgd.theta_best_train, "SGD-test": sgd.theta_best_test,
                "LBFGS-train": lb.theta_best_train, "LBFGS-test": lb.theta_best_test}
        atomic_savez(self.path("sets.npz"), {k.replace("-", "_"): v for k, v in sets.items()})
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
            raise StudyError(f"{self.out}: the train stage has not finished")
        d = load_npz(self.path("sets.npz"))
        return {k: d[k.replace("-", "_")] for k in SETS}

    def stage_embed(self):
        if self.done("embed"):
            self.log.info("embed: done already")
            return
        sets = self.sets()
        combos = (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test"),
                  ("LBFGS-train", "SGD-test"))
        arrays, seps, dists = {}, {}, {}
        for a, b in combos:
            X = np.concatenate([sets[a], sets[b]])
            for kernel in ("rbf", "linear"):
                emb = KernelPCA(2, kernel=kernel).fit_transform(X)
                key = f"{a}|{b}|{kernel}"
                arrays[key.replace("|", "__").replace("-", "_")] = emb
                seps[key] = separation(emb[: len(sets[a])], emb[len(sets[a]):])
        for a, b in (("LBFGS-train", "SGD-train"), ("LBFGS-test", "SGD-test")):
            da, db = centroid_distances(sets[a], sets[b])
            dists[a], dists[b] = da.tolist(), db.tolist()
        atomic_savez(self.path("embedding.npz"), arrays)
        self.log.info("embed: PC1 separation (AUC) %s",
                      {k: round(v["auc"], 3) for k, v in seps.items()})
        self._finish("embed", separation=seps, centroid_distances=dists)

    def stage_paths(self):
        if self.done("paths"):
            self.log.info("paths: done already")
            return
        c = self.config
        sets = self.sets()
        train_ls, test_ls = self.landscapes()
        kw = dict(n_points=c["n_points"], n_modes=c["n_modes"], lam=c["lam"], lr=c["path_lr"],
                  steps=c["path_steps"], refine=True)
        summary = {}
        for name in SETS:
            on = [("train", train_ls)] + ([("test", test_ls)] if name.endswith("test") else [])
            for lname, ls in on:
                key = f"{name}@{lname}"
                self.log.info("paths: %s, %s pairs on the %s landscape", name, c["pairs"], lname)
                res = barrier_matrix(ls, sets[name], pairs=c["pairs"], seed=c["seed"],
                                     out=self.path(f"paths_{name}_{lname}.npz"),
                                     progress=not self.quiet, **kw)
                b = res["barrier"]
                summary[key] = dict(
                    median=float(np.median(b)), q25=float(np.percentile(b, 25)),
                    q75=float(np.percentile(b, 75)), mean=float(np.mean(b)),
                    median_rel=float(np.median(res["barrier_rel"])),
                    median_refined=float(np.median(res["barrier_refined"])),
                    median_straight=float(np.median(res["straight_barrier"])),
                    pairs=int(len(b)),
                )
        self._finish("paths", barriers=summary)

    def stage_plot(self):
        from . import plots
        from .analytic import toy_gaussians

        figs = self.path("figures")
        os.makedirs(figs, exist_ok=True)
        written = []
        ens = {"SGD": Ensemble.load(self.path("ensemble_sgd.npz")),
               "LBFGS": Ensemble.load(self.path("ensemble_lbfgs.npz"))}
        written += plots.save_figure(plots.plot_loss_curves(ens), os.path.join(figs,
                                                                               "fig2_loss_curves"))
        toy = toy_gaussians()
        res = {
            "sum (paper)": find_path(toy, *toy.endpoints, n_points=100, lam=10.0,
                                     progress=False),
            "sum of squares (authors' notebook)": find_path(
                toy, *toy.endpoints, n_points=101, n_modes=15, lam=10.0, lr=0.01, steps=300,
                objective="sum_squares", progress=False),
            "minimax (ours)": find_path(toy, *toy.endpoints, n_points=100, lam=10.0, lr=0.01,
                                        steps=300, objective="minimax", progress=False),
        }
        written += plots.save_figure(plots.plot_landscape_paths(toy, res),
                                     os.path.join(figs, "fig3_toy_paths"))
        for lname in ("train", "test"):
            bars, profiles = {}, {}
            for name in SETS:
                p = self.path(f"paths_{name}_{lname}.npz")
                if os.path.exists(p):
                    d = load_npz(p)
                    bars[name] = d["barrier"][d["done"]]
                    if d["done"].any():
                        i = int(np.argmax(d["done"]))
                        profiles[name] = (np.linspace(0, 1, d["losses"].shape[1]), d["losses"][i])
            if bars:
                written += plots.save_figure(plots.plot_barrier_histograms(bars),
                                             os.path.join(figs, f"fig4_barriers_{lname}"))
                written += plots.save_figure(plots.plot_loss_profiles(profiles),
                                             os.path.join(figs, f"loss_profiles_{lname}"))
        dists = self.manifest["results"].get("centroid_distances", {})
        for kind in ("train", "test"):
            sel = {k: v for k, v in dists.items() if k.endswith(kind)}
            if sel:
                written += plots.save_figure(plots.plot_distance_histograms(sel),
                                             os.path.join(figs, f"fig5_distances_{kind}"))
        if os.path.exists(self.path("embedding.npz")):
            emb = load_npz(self.path("embedding.npz"))
            sets = self.sets()
            for key, E in emb.items():
                a, b, kernel = key.split("__")
                a, b = a.replace("_", "-"), b.replace("_", "-")
                na = len(sets[a])
                fig = plots.plot_embedding({a: E[:na], b: E[na:]}, title=f"{kernel} kernel PCA")
                written += plots.save_figure(fig, os.path.join(figs, f"fig6_kpca_{key}"))
        self.log.info("plot: %d files in %s", len(written), figs)
        self._finish("plot", figures=[os.path.relpath(w, self.out) for w in written])
        self.report()

    # --------------------------------------------------------------- report
    def report(self) -> str:
        text = render_report(self.config, self.manifest["results"])
        atomic_write_text(self.path("report.md"), text)
        return text


def _diff(old, new) -> str:
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
