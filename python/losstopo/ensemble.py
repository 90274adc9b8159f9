"""A trained population of networks: snapshots, loss curves, selection, save/load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List

import numpy as np

from ._checks import check_int
from ._io import SEAL, atomic_savez, load_npz, load_sealed
from .models import MLP

ARRAYS = (
    "theta_final", "theta_best_train", "theta_best_test", "epoch_best_train", "epoch_best_test",
    "train_loss", "test_loss", "train_acc", "test_acc", "status", "run_ids",
)


@dataclass
class Ensemble:
    """R trained runs of one network.

    Attributes
    ----------
    net : MLP, or None for a non-native (e.g. PyTorch) model
    theta_final, theta_best_train, theta_best_test : (R, D)
        Parameters after the last epoch, at the minimum of each run's training-loss
        curve (the paper's "train" set) and of its test-loss curve ("test" set).
    epoch_best_train, epoch_best_test : (R,) int
        Epochs of those minima (-1 where there is no test set).
    train_loss, test_loss, train_acc, test_acc : (R, epochs + 1) float64
        Full-dataset curves, index 0 at the initialization; NaN where not measured.
    status : (R,) int
        Why each run ended (see ``messages``).
    run_ids : (R,) int
        Index of each run in its seed's family (its initialization and order stream).
    meta : dict
        Method, hyperparameters, data fingerprint, package version.
    """

    net: MLP
    theta_final: np.ndarray
    theta_best_train: np.ndarray
    theta_best_test: np.ndarray
    epoch_best_train: np.ndarray
    epoch_best_test: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    status: np.ndarray
    run_ids: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return self.theta_final.shape[0]

    @property
    def messages(self) -> List[str]:
        from ._native import core

        return [core.status_messages.get(int(s), "unknown") for s in self.status]

    @property
    def best_train_loss(self) -> np.ndarray:
        """(R,) the minimum of each run's training-loss curve."""
        return _at(self.train_loss, self.epoch_best_train)

    @property
    def best_test_loss(self) -> np.ndarray:
        """(R,) the minimum of each run's test-loss curve (NaN without a test set)."""
        return _at(self.test_loss, self.epoch_best_test)

    def select(self, k: int) -> "Ensemble":
        """The k runs with the lowest best training loss (the paper keeps 48 of 75)."""
        k = check_int("k", k, 1, self.runs)
        key = np.where(np.isfinite(self.best_train_loss), self.best_train_loss, np.inf)
        idx = np.sort(np.argsort(key, kind="stable")[:k])
        return self.subset(idx)

    def subset(self, idx) -> "Ensemble":
        idx = np.asarray(idx)
        kw = {name: getattr(self, name)[idx] for name in ARRAYS}
        return Ensemble(net=self.net, meta=dict(self.meta), **kw)

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> None:
        """Writes an .npz (arrays plus JSON metadata, sealed) atomically."""
        meta = dict(self.meta, net=None if self.net is None else self.net.to_dict())
        arrays = {name: getattr(self, name) for name in ARRAYS}
        arrays["meta"] = np.array(json.dumps(meta))
        atomic_savez(path, arrays, seal=dict(kind="ensemble"))

    @classmethod
    def load(cls, path, sealed: bool = True) -> "Ensemble":
        """Reads a file Ensemble.save wrote, its seal and arrays checked. ``sealed=False``
        also reads a file from before files were sealed (a study that vouches for its
        bytes)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"ensemble file not found: {path}")
        try:
            if sealed:
                data, _ = load_sealed(path, "ensemble")
            else:
                data = load_npz(path)
                data.pop(SEAL, None)
            meta = json.loads(str(data.pop("meta")))
            nd = meta.pop("net")
            net = MLP.from_dict(nd) if isinstance(nd, dict) else None
            kw = {name: data[name] for name in ARRAYS}
            check_ensemble_arrays(kw, net)
        except Exception as e:  # a truncated, foreign or edited file
            raise ValueError(f"{path}: not a valid losstopo ensemble file ({e})") from e
        return cls(net=net, meta=meta, **kw)

    def __repr__(self) -> str:
        return (f"Ensemble({self.meta.get('method', '?')}, runs={self.runs}, "
                f"epochs={self.train_loss.shape[1] - 1}, net={self.net!r})")


def check_ensemble_arrays(kw: dict, net) -> None:
    """Shapes, dtypes, ranges and consistency of an ensemble's arrays (ValueError):
    the best epochs must be where the curves have their first minimum, as training
    records them, so an edited file cannot yield another table silently."""
    th = kw["theta_final"]
    if th.ndim != 2 or th.dtype.kind != "f":
        raise ValueError(f"theta_final: expected a float array (R, D), got {th.dtype} {th.shape}")
    R, D = th.shape
    if net is not None and D != net.num_params:
        raise ValueError(f"theta_final: {D} parameters, the network has {net.num_params}")
    for name in ("theta_best_train", "theta_best_test"):
        if kw[name].shape != (R, D) or kw[name].dtype.kind != "f":
            raise ValueError(f"{name}: expected a float array ({R}, {D})")
    E1 = kw["train_loss"].shape[1] if kw["train_loss"].ndim == 2 else -1
    for name in ("train_loss", "test_loss", "train_acc", "test_acc"):
        if kw[name].shape != (R, E1) or kw[name].dtype.kind != "f" or E1 < 1:
            raise ValueError(f"{name}: expected a float array ({R}, epochs + 1)")
    for name in ("epoch_best_train", "epoch_best_test", "status", "run_ids"):
        if kw[name].shape != (R,) or kw[name].dtype.kind not in "iu":
            raise ValueError(f"{name}: expected an integer array ({R},)")
    if ((kw["status"] < 0) | (kw["status"] > 6)).any():
        raise ValueError("status: values outside the status codes 0..6")
    if (kw["run_ids"] < 0).any() or len(set(kw["run_ids"].tolist())) != R:
        raise ValueError("run_ids: expected distinct non-negative run indices")
    for kind in ("train", "test"):
        curves, best = kw[f"{kind}_loss"], kw[f"epoch_best_{kind}"]
        for r in range(R):
            finite = np.isfinite(curves[r])
            want = int(np.argmin(np.where(finite, curves[r], np.inf))) if finite.any() else -1
            if best[r] != want:
                raise ValueError(f"epoch_best_{kind}[{r}] = {best[r]}, but the {kind}-loss "
                                 f"curve has its minimum at epoch {want}")
            if want >= 0 and not np.isfinite(kw[f"theta_best_{kind}"][r]).all():
                raise ValueError(f"theta_best_{kind}[{r}]: not finite")


def _at(curves: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    out = np.full(curves.shape[0], np.nan)
    ok = epochs >= 0
    out[ok] = curves[np.nonzero(ok)[0], epochs[ok]]
    return out
