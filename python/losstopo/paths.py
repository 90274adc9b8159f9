"""FourierPathFinder: low paths between two solutions and the barriers along them."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._checks import check_int
from .ensemble import atomic_savez, load_npz
from .landscape import Landscape
from .optimize import _options
from .progress import Progress

OBJECTIVES = ("sum", "sum_squares", "minimax")
OPTIMIZERS = ("adam", "lbfgs")
GOLDEN = 0.3819660112501051


class FourierPath:
    """w(t) = (1 - t) a + t b + sum_n coeffs[n] sin((n + 1) pi t), t in [0, 1].

    Parameters
    ----------
    a, b : (D,) endpoints
    coeffs : (n_modes, D), optional (zeros: the straight line)
    """

    def __init__(self, a, b, coeffs=None, n_modes: int = 10):
        self.a = np.asarray(a)
        self.b = np.asarray(b)
        if self.a.ndim != 1 or self.a.shape != self.b.shape:
            raise ValueError(f"a, b: expected two vectors of the same length, got "
                             f"{self.a.shape} and {self.b.shape}")
        dt = np.result_type(self.a.dtype, self.b.dtype, np.float32)
        if coeffs is None:
            coeffs = np.zeros((n_modes, self.a.size), dtype=dt)
        self.coeffs = np.asarray(coeffs)
        if self.coeffs.ndim != 2 or self.coeffs.shape[1] != self.a.size:
            raise ValueError(f"coeffs: expected shape (n_modes, {self.a.size}), got "
                             f"{self.coeffs.shape}")

    @property
    def n_modes(self) -> int:
        return self.coeffs.shape[0]

    def at(self, t) -> np.ndarray:
        """Points at t (scalar or array): (D,) or (len(t), D)."""
        t_arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
        S = np.sin(np.outer(t_arr, np.arange(1, self.n_modes + 1)) * np.pi)
        W = (np.outer(1 - t_arr, self.a) + np.outer(t_arr, self.b) + S @ self.coeffs)
        W = W.astype(self.coeffs.dtype, copy=False)
        return W[0] if np.ndim(t) == 0 else W

    def length(self, n: int = 1001) -> float:
        """Euclidean length, summed over n equally spaced points."""
        W = self.at(np.linspace(0.0, 1.0, n)).astype(np.float64)
        return float(np.linalg.norm(np.diff(W, axis=0), axis=1).sum())

    def save(self, path) -> None:
        atomic_savez(path, dict(a=self.a, b=self.b, coeffs=self.coeffs))

    @classmethod
    def load(cls, path) -> "FourierPath":
        d = load_npz(path)
        return cls(d["a"], d["b"], d["coeffs"])

    def __repr__(self) -> str:
        return f"FourierPath(D={self.a.size}, n_modes={self.n_modes})"


def _energy_fn(landscape):
    """f(W (P, D)) -> energies (P,) for a Landscape or a batched callable."""
    if isinstance(landscape, Landscape) or callable(getattr(landscape, "loss", None)):
        return landscape.loss  # values alone, no gradients
    if callable(getattr(landscape, "energy", None)):
        return landscape.energy
    return lambda W: np.asarray(landscape(W)[0], dtype=np.float64)


def _measures(E: np.ndarray, e_a: float, e_b: float) -> dict:
    H = float(np.max(E))
    return dict(barrier=H, barrier_rel=H - max(e_a, e_b), barrier_mean=H - 0.5 * (e_a + e_b))


def refine_maximum(path: FourierPath, energy, n_points: int, factor: int = 10,
                   iters: int = 20):
    """The path's highest energy: a grid ``factor`` times finer than ``n_points``,
    then golden-section search in t around the highest grid point.

    Returns (t_max, E_max, t_grid, E_grid).
    """
    t = np.linspace(0.0, 1.0, factor * (n_points - 1) + 1)
    E = np.asarray(energy(path.at(t)), dtype=np.float64)
    k = int(np.argmax(E))
    lo, hi = t[max(k - 1, 0)], t[min(k + 1, len(t) - 1)]
    best_t, best_e = t[k], E[k]
    f = lambda s: float(energy(path.at(np.array([s])))[0])  # noqa: E731
    x1, x2 = hi - (1 - GOLDEN) * (hi - lo), lo + (1 - GOLDEN) * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):  # maximize
        if f1 > f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - (1 - GOLDEN) * (hi - lo)
            f1 = f(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + (1 - GOLDEN) * (hi - lo)
            f2 = f(x2)
    for tt, ee in ((x1, f1), (x2, f2)):
        if ee > best_e:
            best_t, best_e = tt, ee
    return float(best_t), float(best_e), t, E


@dataclass
class PathResult:
    """A found path and the barrier measures along it.

    ``barrier`` is the paper's absolute H = max_m E(w(t_m)) over the M points;
    ``barrier_rel`` subtracts the higher endpoint energy, ``barrier_mean`` the mean of
    the two. With refinement, ``barrier_refined`` is the path's true maximum (at
    ``t_max``). ``straight`` holds the same measures for the straight line.
    """

    path: FourierPath
    t: np.ndarray
    losses: np.ndarray
    barrier: float
    barrier_rel: float
    barrier_mean: float
    length: float
    history: np.ndarray
    straight: dict
    endpoint_losses: tuple
    barrier_refined: Optional[float] = None
    t_max: Optional[float] = None
    errors: Optional[np.ndarray] = None
    error_barrier: Optional[float] = None
    evaluations: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def straight_barrier(self) -> float:
        return self.straight["barrier"]

    def evaluate(self, landscape, refine: bool = True) -> "PathResult":
        """The same path measured on another landscape (e.g. the test set)."""
        return _measure(self.path, landscape, self.t, self.history, self.settings, refine,
                        evaluations=0)


def _measure(path, landscape, t, history, settings, refine, evaluations) -> PathResult:
    energy = _energy_fn(landscape)
    W = path.at(t)
    E = np.asarray(energy(W), dtype=np.float64)
    e_a, e_b = float(E[0]), float(E[-1])
    straight = FourierPath(path.a, path.b, np.zeros_like(path.coeffs))
    Es = np.asarray(energy(straight.at(t)), dtype=np.float64)
    res = PathResult(
        path=path, t=t, losses=E, length=path.length(), history=history,
        straight=dict(_measures(Es, e_a, e_b), losses=Es), endpoint_losses=(e_a, e_b),
        evaluations=evaluations, settings=settings, **_measures(E, e_a, e_b),
    )
    if refine:
        res.t_max, res.barrier_refined, _, _ = refine_maximum(path, energy, len(t))
        res.straight["t_max"], res.straight["barrier_refined"], _, _ = refine_maximum(
            straight, energy, len(t))
    if getattr(landscape, "classifier", False) is True or (
            isinstance(landscape, Landscape) and landscape.net.loss == "cross_entropy"):
        res.errors = 1.0 - np.asarray(landscape.accuracy(W), dtype=np.float64)
        res.error_barrier = float(res.errors.max())
    return res


def _path_params(n_modes, n_points, lam, optimizer, lr, steps, objective, temperature,
                 line_search):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    for name, v, lo in (("n_modes", n_modes, 0), ("n_points", n_points, 3), ("steps", steps, 0)):
        check_int(name, v, lo)
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam: must be a finite non-negative number, got {lam!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: must be a positive number, got {lr!r}")
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be positive, got {temperature!r}")
    p = dict(n_modes=int(n_modes), n_points=int(n_points), lam=float(lam), optimizer=optimizer,
             lr=float(lr), steps=int(steps), objective=objective)
    if temperature is not None:
        p["temperature"] = float(temperature)
    if optimizer == "lbfgs":
        p["lbfgs"] = _options(line_search, 10, int(steps), 0.0, 0.0, None)
    return p


def _endpoint(name, v, D, dtype):
    v = np.asarray(v)
    if v.dtype.kind not in "fiu" or v.dtype == np.bool_:
        raise TypeError(f"{name}: expected a real vector, got dtype {v.dtype}")
    if v.ndim != 1 or (D is not None and v.size != D):
        raise ValueError(f"{name}: expected shape ({D},), got {v.shape}")
    v = np.ascontiguousarray(v, dtype=dtype)
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return v


def find_path(
    landscape,
    a,
    b,
    n_modes: int = 10,
    n_points: int = 50,
    lam: float = 1e-4,
    optimizer: str = "adam",
    lr: float = 1e-3,
    steps: int = 100,
    objective: str = "sum",
    temperature: Optional[float] = None,
    refine: bool = True,
    seed: int = 0,
    init_scale: float = 0.0,
    line_search: str = "strong_wolfe",
    progress: bool = True,
) -> PathResult:
    """Finds a low path from a to b (FourierPathFinder, Yu & Morozov, Algorithm 2).

    Parameters
    ----------
    landscape : Landscape or callable
        A :class:`Landscape` (evaluated natively) or ``f(X (P, D)) -> (E (P,), G (P, D))``.
    a, b : (D,) endpoints (fixed).
    n_modes : sine modes N_F. n_points : M points on [0, 1], endpoints included.
    lam : weight of the smoothness term lam * sum_m |w_m+1 - w_m|^2.
    optimizer : "adam" (the paper's; ``lr``, ``steps``) or "lbfgs" (``steps``
        iterations, ``line_search``).
    objective : "sum" (the paper's: sum of the M energies), "sum_squares" (sum of
        E_m^2, the objective of the authors' 2-D notebook, which produced the paper's
        Fig. 3 numbers) or "minimax" (a soft maximum, M tau log mean exp(E_m / tau),
        which aims the path's highest point at the saddle; ``temperature`` tau
        defaults to 1% of the straight line's barrier above the higher endpoint).
    refine : also locate the path's true maximum on a 10x finer grid and by
        golden-section search in t (``barrier_refined``, ``t_max``).
    seed, init_scale : initial coefficients ~ N(0, init_scale^2) (0: the straight
        line, as in the paper).
    progress : a progress bar on stderr.

    Every step evaluates all path points in one batched call; the best path seen
    (lowest summed energy, without the smoothness term) is returned.
    """
    from ._native import core

    params = _path_params(n_modes, n_points, lam, optimizer, lr, steps, objective, temperature,
                          line_search)
    if isinstance(landscape, Landscape):
        dtype, D = landscape.dtype, landscape.num_params
        target = landscape.native if landscape.native is not None else landscape
    elif callable(landscape):
        dtype, D, target = np.dtype(np.float64), None, landscape
    else:
        raise TypeError(f"landscape: expected a Landscape or a callable, got "
                        f"{type(landscape).__name__}")
    a = _endpoint("a", a, D, dtype)
    b = _endpoint("b", b, a.size, dtype)
    if objective == "minimax" and temperature is None:
        energy = _energy_fn(landscape)
        t = np.linspace(0, 1, n_points)
        E = np.asarray(energy(FourierPath(a, b, n_modes=n_modes).at(t)), dtype=np.float64)
        params["temperature"] = max(0.01 * float(E.max() - max(E[0], E[-1])), 1e-8)
    Batch = core.PathBatchF32 if dtype == np.float32 else core.PathBatchF64
    pb = Batch(target, a[None], b[None], params)
    if init_scale:
        rng = np.random.default_rng(seed)
        pb.set_coeffs(init_scale * rng.standard_normal((1, n_modes, a.size)))
    bar = Progress(steps, desc="path", enabled=progress)
    try:
        pb.optimize(lambda s: bar.set(s))
    finally:
        bar.close()
    path = FourierPath(a, b, pb.best_coeffs[0])
    settings = dict(params, seed=int(seed), init_scale=float(init_scale))
    return _measure(path, landscape, pb.t, pb.history[0], settings, refine,
                    evaluations=int(pb.energy_points))


def barrier_matrix(landscape, thetas, pairs=300, seed: int = 0, out=None,
                   progress: bool = True, **find_path_kwargs):
    """Paths and barriers for pairs of a set of solutions.

    Parameters
    ----------
    landscape : Landscape or callable
    thetas : (n, D) solutions
    pairs : int (random distinct pairs i < j, at most all of them) or (k, 2) indices
    out : path, optional
        Each finished pair is saved there at once (atomically); a rerun with the
        same arguments skips finished pairs, so an interrupted run resumes.
    find_path_kwargs : passed to :func:`find_path` (progress is per pair here).

    Returns
    -------
    dict of arrays over the pairs: ``pairs`` (k, 2), ``barrier``, ``barrier_rel``,
    ``barrier_mean``, ``barrier_refined``, ``length``, ``straight_barrier``,
    ``error_barrier`` (NaN where not defined), ``losses`` (k, n_points) the energy
    profiles, and ``done`` (bool).
    """
    thetas = np.asarray(thetas)
    if thetas.ndim != 2 or thetas.shape[0] < 2:
        raise ValueError(f"thetas: expected shape (n >= 2, D), got {thetas.shape}")
    n = thetas.shape[0]
    idx = _pairs(pairs, n, seed)
    k = len(idx)
    keys = ("barrier", "barrier_rel", "barrier_mean", "barrier_refined", "length",
            "straight_barrier", "error_barrier")
    res = {key: np.full(k, np.nan) for key in keys}
    res["pairs"] = idx
    res["done"] = np.zeros(k, dtype=bool)
    fp_kwargs = dict(find_path_kwargs)
    fp_kwargs.pop("progress", None)
    M = int(fp_kwargs.get("n_points", 50))
    res["losses"] = np.full((k, M), np.nan)  # the energy profile along each path
    config = dict(pairs=idx.tolist(), kwargs={k2: repr(v) for k2, v in sorted(fp_kwargs.items())},
                  thetas=hashlib.sha256(np.ascontiguousarray(thetas).tobytes()).hexdigest()[:16])
    chash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    if out is not None and os.path.exists(out):
        try:
            old = load_npz(out)
            meta = json.loads(str(old.pop("meta")))
        except Exception as e:
            raise ValueError(f"out {out}: unreadable ({e}); delete it to start afresh") from e
        if meta.get("config_hash") != chash:
            raise ValueError(f"out {out} holds pairs of a different configuration; "
                             "use another path or delete it")
        for key in res:
            res[key] = old[key]
    bar = Progress(k, desc="pairs", enabled=progress)
    bar.set(int(res["done"].sum()))
    try:
        for j in range(k):
            if res["done"][j]:
                continue
            i1, i2 = idx[j]
            r = find_path(landscape, thetas[i1], thetas[i2], progress=False, **fp_kwargs)
            res["barrier"][j] = r.barrier
            res["barrier_rel"][j] = r.barrier_rel
            res["barrier_mean"][j] = r.barrier_mean
            res["barrier_refined"][j] = np.nan if r.barrier_refined is None else r.barrier_refined
            res["length"][j] = r.length
            res["straight_barrier"][j] = r.straight_barrier
            res["error_barrier"][j] = np.nan if r.error_barrier is None else r.error_barrier
            res["losses"][j] = r.losses
            res["done"][j] = True
            if out is not None:
                atomic_savez(out, dict(res, meta=np.array(json.dumps(dict(config_hash=chash)))))
            bar.update(1, postfix=f"barrier {r.barrier:.4g}")
    finally:
        bar.close()
    return res


def _pairs(pairs, n, seed) -> np.ndarray:
    if isinstance(pairs, (int, np.integer)) and not isinstance(pairs, bool):
        if pairs < 1:
            raise ValueError(f"pairs: must be at least 1, got {pairs}")
        iu = np.stack(np.triu_indices(n, 1), axis=1)
        rng = np.random.default_rng(seed)
        sel = rng.permutation(len(iu))[: min(int(pairs), len(iu))]
        return iu[np.sort(sel)]
    idx = np.asarray(pairs)
    if idx.ndim != 2 or idx.shape[1] != 2 or idx.dtype.kind not in "iu":
        raise ValueError("pairs: expected an int or an integer array of shape (k, 2)")
    if idx.min() < 0 or idx.max() >= n or (idx[:, 0] == idx[:, 1]).any():
        raise ValueError(f"pairs: indices must lie in [0, {n}) and differ within a pair")
    return idx.astype(np.int64)
