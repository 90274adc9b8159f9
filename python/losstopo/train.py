"""Training populations of networks with SGD or L-BFGS-GSS in the compiled core."""

from __future__ import annotations

import hashlib
import os
from typing import Optional, Sequence, Union

import numpy as np

from . import __version__
from ._checks import check_int
from ._io import atomic_savez, config_hash, load_sealed
from ._native import arithmetic, arithmetic_mismatch
from .cluster import run_tasks
from .ensemble import ARRAYS, Ensemble, check_ensemble_arrays
from .landscape import Landscape
from .models import MLP, check_dtype
from .optimize import lbfgs_options, lbfgs_params
from .progress import Progress

METHODS = ("sgd", "lbfgs")
MAX_RUNS = 2**20  # runs of one population (each holds its parameters and curves)
DEFAULT_EPOCHS = {"sgd": 20, "lbfgs": 1000}


def _is_objective(data) -> bool:
    """A non-native landscape (e.g. TorchLandscape) with the trainer's interface."""
    return all(hasattr(data, a) for a in ("loss_and_grad", "evaluate_each", "num_params",
                                          "num_samples", "classifier"))


def _landscape(name, data, net, dtype, device, threads):
    if _is_objective(data) and not isinstance(data, Landscape):
        if np.dtype(data.dtype) != dtype:
            raise ValueError(f"{name}: landscape dtype {data.dtype} differs from dtype={dtype}")
        fp = getattr(data, "fingerprint", None)  # TorchLandscape's: data, module, dtype
        return data, fp if isinstance(fp, str) else repr(data)
    if isinstance(data, Landscape):
        if data.net != net:
            raise ValueError(f"{name}: landscape of a different network")
        if data.dtype != dtype:
            raise ValueError(f"{name}: landscape dtype {data.dtype} differs from dtype={dtype}")
        return data, data.fingerprint
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name}: expected an (X, y) pair or a Landscape")
    X, y = data
    ls = Landscape(net, X, y, dtype=dtype, device=device, threads=threads)
    return ls, ls.fingerprint


def _run_seed(seed: int, run: int) -> int:
    """Seed of run ``run``'s minibatch orders (a stream apart from its initialization)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(run), 1))
    return int(ss.generate_state(1, np.uint64)[0])


def train(
    net: MLP,
    train,
    test=None,
    method: str = "sgd",
    runs: Union[int, Sequence[int]] = 1,
    seed: int = 0,
    epochs: Optional[int] = None,
    lr: float = 0.1,
    momentum: float = 0.0,
    batch_size: int = 64,
    history: int = 10,
    line_search: str = "golden",
    dtype="float32",
    device: str = "cpu",
    checkpoint=None,
    checkpoint_every: Optional[int] = None,
    progress: bool = True,
    shared_order: bool = False,
    threads: Optional[int] = None,
    gtol: float = 0.0,
    options: Optional[dict] = None,
    theta0=None,
    group: Optional[int] = None,
    client=None,
) -> Ensemble:
    """Trains a population of networks, all runs advanced together by the engine.

    Parameters
    ----------
    net : MLP
    train, test : (X, y) pairs (y None for autoencoders) or Landscapes; test optional.
    method : "sgd" (minibatches) or "lbfgs" (full batch, the paper's L-BFGS-GSS).
    runs : int or sequence of int
        R, or explicit run indices. Run r is initialized from its own stream of
        ``seed`` (``net.init(1, seed, first=r)``) and, for SGD, draws its own
        minibatch order: the same run alone or in a population starts from the same
        point and sees the same data. Its numbers agree to rounding, not bitwise:
        the engine's sums over a batch of vectors round differently from one vector's
        (L-BFGS amplifies this over its iterations: parameters differing by 4.7e-4 have
        been seen). The same population, resumed or not, is bitwise the same.
    epochs : int
        SGD: passes over the data (default 20); L-BFGS: iterations (default 1000).
    lr, momentum, batch_size : SGD settings (PyTorch conventions; the last batch of
        an epoch may be smaller).
    history, line_search, gtol, options : L-BFGS settings (see :func:`minimize`);
        gtol = 0 runs all epochs.
    shared_order : bool
        SGD only: one minibatch order for all runs. Each step's first layer is then
        one product for the whole population (faster); runs still differ by their
        initialization, but no longer by their data order.
    checkpoint : path, optional
        State is saved there atomically every ``checkpoint_every`` epochs (default:
        SGD 1, L-BFGS 10) and when interrupted; calling ``train`` again with the same
        arguments resumes and gives bitwise the same result as an uninterrupted run.
        L-BFGS-GSS carries each run's first-layer product from one line to the next
        (A_x - u A_d instead of a new product of x) and takes a fresh one every k
        iterations, k the largest divisor of ``checkpoint_every`` up to 10, with or
        without a checkpoint; an interrupted L-BFGS run therefore keeps the last such
        boundary, and resuming redoes at most k - 1 iterations.
    progress : bool
        A progress bar on stderr.
    theta0 : array (R, D), optional
        Starting points instead of the runs' random initializations.
    group : int, optional
        Runs per engine batch: the runs are trained in consecutive groups of this
        many, each group batched on its own (None: all runs in one batch). A run's
        numbers can depend on the width of its batch (the order of the floating-point
        sums), never on where its group runs. With a checkpoint, finished groups are
        saved as they finish and a rerun trains only the others.
    client : a ``dask.distributed.Client``, optional (with ``group``)
        Trains the groups as tasks on its cluster (the data travel to each worker
        once; only this process writes files). The numbers equal a single-process
        run with the same ``group`` and the workers' thread count per engine. Needs
        ``pip install "losstopo[distributed]"``.

    A run whose loss becomes NaN or Inf stops (``status``/``messages`` say so);
    the others go on.

    Returns
    -------
    Ensemble
    """
    from ._native import core

    if checkpoint is not None and os.path.exists(os.fspath(checkpoint)) and not os.path.isfile(
            os.fspath(checkpoint)):
        raise ValueError(f"checkpoint {os.fspath(checkpoint)}: not a regular file (a device, "
                         "FIFO or folder keeps no state to resume from); choose a file's path")
    if client is not None and group is None:
        raise ValueError("client: training on a cluster needs group= (runs per task; the "
                         "numbers then equal a single-process run with the same group)")
    if group is not None:
        return _train_groups(net, train, test, runs, group, client, checkpoint, progress,
                             theta0, dict(
                                 method=method, seed=seed, epochs=epochs, lr=lr,
                                 momentum=momentum, batch_size=batch_size, history=history,
                                 line_search=line_search, dtype=dtype, device=device,
                                 shared_order=shared_order, threads=threads, gtol=gtol,
                                 options=options))
    native = not _is_objective(train) or isinstance(train, Landscape)
    if native and not isinstance(net, MLP):
        raise TypeError(f"net: expected a losstopo.MLP, got {type(net).__name__}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    dt = check_dtype(dtype)
    run_ids = _run_ids(runs)
    if epochs is None:
        epochs = DEFAULT_EPOCHS[method]
    check_int("seed", seed, minimum=0, maximum=2**63 - 1)
    check_int("epochs", epochs, minimum=0, maximum=2**31 - 1)
    check_int("batch_size", batch_size, maximum=2**31 - 1)
    sgd = core.SGDParams(lr=float(lr), momentum=float(momentum), batch_size=int(batch_size),
                         shared_order=bool(shared_order))
    sgd.validate()
    if checkpoint_every is None:
        checkpoint_every = 1 if method == "sgd" else 10
    check_int("checkpoint_every", checkpoint_every)
    lopts = lbfgs_options(line_search, history, epochs, gtol, 0.0, options)

    train_ls, train_fp = _landscape("train", train, net, dt, device, threads)
    test_ls, test_fp = (None, None) if test is None else _landscape(
        "test", test, net, dt, device, threads)


    if theta0 is None:
        model = net if native else train_ls
        theta0 = np.concatenate([
            np.asarray(model.init(1, seed=seed, first=int(r), dtype=dt), dtype=dt)
            for r in run_ids])
        start = None
    else:
        theta0 = np.asarray(theta0)
        D = train_ls.num_params
        if theta0.shape != (len(run_ids), D):
            raise ValueError(f"theta0: expected shape ({len(run_ids)}, {D}), got {theta0.shape}")
        if theta0.dtype.kind != "f":
            raise TypeError(f"theta0: expected a float array, got dtype {theta0.dtype}")
        theta0 = np.ascontiguousarray(theta0, dtype=dt)
        if not np.isfinite(theta0).all():
            raise ValueError("theta0: contains NaN or Inf")
        start = hashlib.sha256(theta0.tobytes()).hexdigest()[:16]
    run_seeds = [_run_seed(seed, r) for r in run_ids]
    config = dict(
        method=method, run_ids=[int(r) for r in run_ids], seed=int(seed), epochs=int(epochs),
        lr=float(lr), momentum=float(momentum), batch_size=int(batch_size),
        shared_order=bool(shared_order), lbfgs=lopts, dtype=dt.name,
        net=net.to_dict() if isinstance(net, MLP) else repr(train_ls),
        train_data=train_fp, test_data=test_fp, theta0=start,
    )
    chash = config_hash(config)

    Trainer = core.TrainerF32 if dt == np.float32 else core.TrainerF64

    def engine(ls):  # a compiled engine, or an object the core calls back
        return ls.engine if isinstance(ls, Landscape) else ls

    # L-BFGS-GSS lines continue each run's last line (its first-layer product carried,
    # not computed again) and start afresh every k iterations (with a checkpoint or
    # without), k dividing checkpoint_every, so a run resumed from a checkpoint
    # continues bitwise as an uninterrupted one.
    lparams = lbfgs_params(lopts)
    # (at most 10 carried iterations, a divisor of checkpoint_every, so that rounding
    # does not build up over long checkpoint intervals)
    carry = max(k for k in range(1, min(10, checkpoint_every) + 1) if checkpoint_every % k == 0)
    lparams.carry_lines = carry if method == "lbfgs" else 0
    trainer = Trainer(engine(train_ls), None if test_ls is None else engine(test_ls), theta0,
                      method, int(epochs), sgd, int(seed) & (2**64 - 1), run_seeds, lparams)
    # What the numbers depend on beyond the configuration (a native CPU engine's thread
    # count, instruction set and BLAS kernels): a checkpoint resumes only where they
    # are the same, so a resumed population is bitwise the uninterrupted one.
    engine = _arithmetic(train_ls)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if os.path.exists(checkpoint):
            _restore(trainer, checkpoint, chash, engine)

    def save():
        if checkpoint is not None:
            st = trainer.state()
            atomic_savez(checkpoint, st, seal=dict(kind="checkpoint", config_hash=chash,
                                                   epoch=trainer.epoch, config=config,
                                                   engine=engine))

    label = f"{method} x{len(run_ids)}"
    bar = Progress(epochs, desc=label, enabled=progress)
    bar.set(trainer.epoch)

    def on_epoch(e):
        if checkpoint is not None and (e % checkpoint_every == 0 or e == epochs):
            save()
        loss = trainer.train_loss_at(e) if progress else None
        bar.set(e, postfix=None if loss is None else f"train loss {np.nanmean(loss):.4g}")
        return True

    try:
        trainer.run(int(epochs), on_epoch)
    except BaseException:
        # Keep what was finished (the state is at an epoch boundary); with carried
        # lines only at a fresh-line boundary, else the last checkpoint stands.
        if lparams.carry_lines == 0 or trainer.epoch % lparams.carry_lines == 0:
            save()
        bar.close()
        raise
    bar.close()
    st = trainer.state()
    meta = dict(config, version=__version__, config_hash=chash,
                step_seconds=trainer.step_seconds, eval_seconds=trainer.eval_seconds)
    return Ensemble(
        net=net if isinstance(net, MLP) else None, theta_final=st["theta"], theta_best_train=st["best_train_theta"],
        theta_best_test=st["best_test_theta"], epoch_best_train=st["best_train_epoch"],
        epoch_best_test=st["best_test_epoch"], train_loss=st["train_loss"],
        test_loss=st["test_loss"], train_acc=st["train_acc"], test_acc=st["test_acc"],
        status=st["status"], run_ids=np.asarray(run_ids, dtype=np.int64), meta=meta,
    )


def _group_task(net, train_ls, test_ls, kw, item):
    """One group of runs (ids, theta0 rows or None), trained in one engine batch."""
    ids, theta0 = item
    return train(net, train_ls, test_ls, runs=ids, theta0=theta0, progress=False, **kw)


def _train_groups(net, train_data, test_data, runs, group, client, checkpoint, progress,
                  theta0, kw) -> Ensemble:
    """train() in groups of runs, one after another here or as tasks of a cluster;
    finished groups are kept in ``checkpoint`` (written by this process only)."""
    run_ids = _run_ids(runs)
    group = check_int("group", group, 1, MAX_RUNS)
    if not isinstance(net, MLP):
        raise TypeError("group, client: grouped training needs a losstopo.MLP and its "
                        "native Landscape")
    dt = check_dtype(kw["dtype"])
    train_ls, train_fp = _landscape("train", train_data, net, dt, kw["device"], kw["threads"])
    test_ls, test_fp = (None, None) if test_data is None else _landscape(
        "test", test_data, net, dt, kw["device"], kw["threads"])
    for ls in (train_ls, test_ls):
        if ls is not None and not isinstance(ls, Landscape):
            raise TypeError("group, client: grouped training needs native Landscapes")
    if theta0 is not None:
        theta0 = np.asarray(theta0)
        if theta0.ndim != 2 or len(theta0) != len(run_ids):
            raise ValueError(f"theta0: expected shape ({len(run_ids)}, D), got {theta0.shape}")
    items = [(run_ids[g0:g0 + group], None if theta0 is None else theta0[g0:g0 + group])
             for g0 in range(0, len(run_ids), group)]
    settings = {k: v for k, v in kw.items() if k not in ("device", "threads")}
    config = dict(settings, dtype=dt.name, run_ids=run_ids.tolist(), group=group,
                  net=net.to_dict(), train_data=train_fp, test_data=test_fp,
                  theta0=None if theta0 is None else
                  hashlib.sha256(np.ascontiguousarray(theta0).tobytes()).hexdigest()[:16])
    chash = config_hash(config)
    # groups trained here compute as this process does; on a cluster, as their workers
    engine = _arithmetic(train_ls) if client is None else None
    parts = {}  # group index -> Ensemble
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if os.path.exists(checkpoint):
            parts = _load_parts(checkpoint, chash, engine, net, [ids for ids, _ in items],
                                int(kw["epochs"] if kw["epochs"] is not None
                                    else DEFAULT_EPOCHS[kw["method"]]))

    def save():
        if checkpoint is None:
            return
        arrays = {f"g{k}__{name}": getattr(e, name) for k, e in parts.items() for name in ARRAYS}
        atomic_savez(checkpoint, arrays, seal=dict(
            kind="grouped checkpoint", config_hash=chash, groups=sorted(parts),
            metas={str(k): e.meta for k, e in parts.items()}, engine=engine))

    todo = [k for k in range(len(items)) if k not in parts]
    finished = run_tasks(client, _group_task, (net, train_ls, test_ls, kw),
                         [items[k] for k in todo], key=f"losstopo-train-{kw['method']}")
    bar = Progress(len(run_ids), desc=f"{kw['method']} x{len(run_ids)} in groups of {group}",
                   enabled=progress)
    bar.set(sum(len(items[k][0]) for k in parts))
    try:
        for i, ens in finished:
            parts[todo[i]] = ens
            save()
            bar.update(len(items[todo[i]][0]))
    finally:
        finished.close()  # cancels what still runs on a cluster
        bar.close()
    ens = [parts[k] for k in range(len(items))]
    arrays = {name: np.concatenate([getattr(e_, name) for e_ in ens]) for name in ARRAYS}
    meta = dict(ens[0].meta, run_ids=run_ids.tolist(), group=group, config_hash=chash,
                step_seconds=sum(e_.meta.get("step_seconds", 0.0) for e_ in ens),
                eval_seconds=sum(e_.meta.get("eval_seconds", 0.0) for e_ in ens))
    return Ensemble(net=net, meta=meta, **arrays)


def _load_parts(path, chash, engine, net, groups, epochs) -> dict:
    """The finished groups kept in a grouped training's checkpoint, each checked to be
    its group's runs over all epochs."""
    try:
        data, meta = load_sealed(path, "grouped checkpoint")
        if meta.get("config_hash") != chash:
            raise ValueError("written by a run with a different configuration; use another "
                             "path or delete it to start afresh")
        _check_engine(meta.get("engine"), engine)
        parts = {}
        for k in meta["groups"]:
            kw = {name: data[f"g{int(k)}__{name}"] for name in ARRAYS}
            check_ensemble_arrays(kw, net)
            if (not 0 <= int(k) < len(groups)
                    or not np.array_equal(kw["run_ids"], groups[int(k)])
                    or kw["train_loss"].shape[1] != epochs + 1):
                raise ValueError(f"group {k} does not hold its runs' {epochs} epochs; "
                                 "delete it to start afresh")
            parts[int(k)] = Ensemble(net=net, meta=meta["metas"][str(k)], **kw)
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: {e}") from e
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path}: unreadable ({e}); delete it to start "
                         "afresh") from e
    return parts


def _arithmetic(ls):
    """A native CPU landscape's arithmetic (_native.arithmetic); None for others."""
    if isinstance(ls, Landscape) and ls.device == "cpu":
        return arithmetic(ls.threads or None)
    return None


def _check_engine(recorded, engine):
    """Refuses (ValueError) a checkpoint whose numbers were computed otherwise than
    they would be here."""
    problem = None if recorded is None or engine is None else arithmetic_mismatch(recorded,
                                                                                 engine)
    if problem is not None:
        raise ValueError(f"{problem} (or delete it to start afresh)")


def _restore(trainer, path, config_hash, engine):
    try:
        data, meta = load_sealed(path, "checkpoint")
    except Exception as e:  # a truncated, edited or foreign file
        raise ValueError(f"checkpoint {path}: unreadable ({e}); delete it to start afresh") from e
    if meta.get("config_hash") != config_hash:
        raise ValueError(
            f"checkpoint {path} was written by a run with a different configuration; "
            "use another path or delete it to start afresh"
        )
    try:
        _check_engine(meta.get("engine"), engine)
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: {e}") from None
    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**31:
        raise ValueError(f"checkpoint {path}: epoch {epoch!r} is not an epoch; "
                         "delete it to start afresh")
    missing = [k for k in ("theta", "velocity", "best_train_theta", "best_test_theta",
                           "train_loss", "test_loss", "train_acc", "test_acc",
                           "best_train_epoch", "best_test_epoch", "status") if k not in data]
    if missing:
        raise ValueError(f"checkpoint {path}: arrays {missing} missing; delete it to start afresh")
    try:  # the core checks everything it restores (Trainer::check_restored)
        trainer.restore(epoch, data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path}: {e}; delete it to start afresh") from e


def _run_ids(runs) -> np.ndarray:
    if isinstance(runs, (int, np.integer)) and not isinstance(runs, bool):
        return np.arange(check_int("runs", runs, 1, MAX_RUNS))
    try:
        ids = np.asarray(list(runs))
    except TypeError:
        raise TypeError(f"runs: expected an int or a sequence of run indices, got {runs!r}")
    if ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or len(set(ids)) != ids.size:
        raise ValueError("runs: expected distinct non-negative run indices")
    return ids.astype(np.int64)
