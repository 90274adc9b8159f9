"""A study's configuration: built from a preset and overrides, checked against the
settings table, hashed; and the data and landscapes it names."""

from __future__ import annotations

import numpy as np

from .._io import config_hash
from . import settings as _settings
from .settings import LATER, NETWORK_PRESETS, NETWORKS, PRESETS, binds_study, in_hash, minimum


class StudyError(RuntimeError):
    """A study cannot go on (a changed configuration, a missing stage, ...)."""


def why(e: BaseException) -> str:
    """An exception's message without the traceback, for one-line errors."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def diff(old, new, binding: bool = False) -> str:
    """The settings two configurations differ in, for an error message (with
    ``binding``, only those that bind a study: a stage's own settings never refuse it)."""
    if binding:
        old = {k: v for k, v in old.items() if binds_study(k, v)}
        new = {k: v for k, v in new.items() if binds_study(k, v)}
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")


def study_hash(cfg: dict) -> str:
    """The configuration's hash: every setting that enters it (settings.in_hash)."""
    return config_hash({k: v for k, v in cfg.items() if in_hash(k, v)})


def study_key(cfg: dict) -> str:
    """The hash of the settings that bind a study (settings.binds_study): two
    configurations of one key are one study, whatever their stages' own settings."""
    return config_hash({k: v for k, v in cfg.items() if binds_study(k, v)})


def network(name: str):
    """The native network of that name, or None for a PyTorch one (built per landscape
    by the adapter)."""
    from ..models import autoencoder, fcp

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
    """A study's configuration: the preset's values (the network's, where it has its
    own), then ``overrides`` (None: the preset's), checked."""
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
    from ..landscape import check_device

    try:  # before any file is written: a study on a device it cannot use is no study
        check_device(device)
    except (TypeError, ValueError) as e:
        raise StudyError(f"--device {device}: {e}") from e
    cfg.update(network=network_name, preset=preset, data=data, device=device, curve=curve)
    cfg = {s.name: cfg[s.name] for s in _settings.SETTINGS if s.name in cfg}  # their order
    check_config(cfg, "configuration")
    check_sizes(cfg)
    return cfg


def available_memory() -> int:
    """Bytes of memory available to this process now, page cache included (Linux's
    MemAvailable; elsewhere the free pages; 0 where not known)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_sizes(c: dict) -> None:
    """Refuses, before any file is written, sizes the data cannot give (MNIST's splits)
    or this machine cannot hold (synthetic data, the slices' grids)."""
    from ..datasets import MNIST_SIZES

    need = {}
    if c["data"] == "mnist":
        for key, flag, have in (("n_train", "--n-train", MNIST_SIZES[0]),
                                ("n_test", "--n-test", MNIST_SIZES[2])):
            if c[key] and c[key] > have:
                raise StudyError(f"{flag} {c[key]}: the mnist data has only {have} "
                                 f"{key[2:]} samples; choose at most {have} (or leave it out "
                                 "for all of them)")
    else:  # synthetic: float32 images of 784 pixels, generated here
        need["the synthetic data"] = ((c["n_train"] or 2000) + (c["n_test"] or 500)) * 784 * 4
    if c.get("curvature_solutions"):
        n = c.get("slice_grid") or 51
        need["the slices' grids"] = n * n * 8 * 4  # loss, accuracy and both coordinates
    have = available_memory()
    for what, b in need.items():
        if have and b > have:
            raise StudyError(f"{what} would need {b / 2**30:.1f} GiB, more than the "
                             f"{have / 2**30:.1f} GiB of memory available; choose smaller "
                             "sizes")


def check_config(cfg, where: str) -> None:
    """Raises StudyError unless ``cfg`` has every setting with the right type (a
    setting added later than the configuration gets the value that reproduces it)."""
    if not isinstance(cfg, dict):
        raise StudyError(f"{where}: the configuration is not a mapping")
    kinds = _settings.KINDS
    ints, floats, opt_ints, strs = (kinds[k] for k in ("int", "float", "opt_int", "str"))
    expected = set(ints + floats + opt_ints + strs)
    for k, v in LATER.items():
        cfg.setdefault(k, v)
    if set(cfg) != expected:
        missing, extra = sorted(expected - set(cfg)), sorted(set(cfg) - expected)
        raise StudyError(f"{where}: configuration settings missing {missing}, unknown {extra}")

    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    bad = [k for k in ints if not is_int(cfg[k])]
    bad += [k for k in floats if isinstance(cfg[k], bool)
            or not isinstance(cfg[k], (int, float, np.integer, np.floating))]
    bad += [k for k in opt_ints if cfg[k] is not None and not is_int(cfg[k])]
    bad += [k for k in strs if not isinstance(cfg[k], str)]
    if bad:
        raise StudyError(f"{where}: settings of the wrong type: "
                         + ", ".join(f"{k}={cfg[k]!r}" for k in bad))
    from ..paths import CURVES

    if cfg["curve"] not in CURVES:
        raise StudyError(f"{where}: curve must be one of {CURVES}, got {cfg['curve']!r}")
    for k in opt_ints:
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
    from ..landscape import Landscape

    (Xtr, ytr), (Xte, yte) = data
    name = c["network"]
    net = network(name)
    if net is None:  # a PyTorch model
        from .. import torch_adapter

        module = getattr(torch_adapter, name)()
        # The LSTM's unrolled recurrence gains most from torch.compile (measured: its
        # quick study 1.45x end to end, compilations included); LeNet's passes barely.
        compile = name == "lstm"
        return (torch_adapter.TorchLandscape(module, Xtr, ytr, threads=threads,
                                             compile=compile),
                torch_adapter.TorchLandscape(module, Xte, yte, threads=threads,
                                             compile=compile))
    dev = c["device"]
    threads = threads if dev == "cpu" else None
    return (Landscape(net, Xtr, ytr, device=dev, threads=threads),
            Landscape(net, Xte, yte, device=dev, threads=threads))
