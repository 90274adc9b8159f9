"""FourierPathFinder: low paths between two solutions and the barriers along them."""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._checks import check_int
from ._io import atomic_savez, config_hash, load_sealed
from .cluster import run_tasks
from .landscape import Landscape
from .optimize import lbfgs_options, lbfgs_params
from .progress import Progress

OBJECTIVES = ("sum", "sum_squares", "minimax")
CURVES = ("fourier", "bezier", "polychain")


def basis(curve: str, K: int, t) -> np.ndarray:
    """(len(t), K): the curve family's basis functions phi_1..phi_K at t (the core's
    ``path_basis``): sines, the Bernstein polynomials of degree K + 1 without the two
    end ones, or the hat functions of K evenly spaced bends. All vanish at 0 and 1."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    k = np.arange(1, K + 1)[None, :]
    if curve == "fourier":
        return np.sin(k * np.pi * t)
    if curve == "bezier":
        from scipy.special import comb

        return comb(K + 1, k) * t ** k * (1 - t) ** (K + 1 - k)
    if curve == "polychain":
        h = 1.0 / (K + 1)
        return np.maximum(0.0, 1.0 - np.abs(t - k * h) / h)
    raise ValueError(f"curve: expected one of {CURVES}, got {curve!r}")
OPTIMIZERS = ("adam", "lbfgs")


class FourierPath:
    """w(t) = (1 - t) a + t b + sum_n coeffs[n] phi_(n+1)(t), t in [0, 1]; phi the
    sines sin((n + 1) pi t) (the paper's) or another curve family's basis
    (:func:`basis`).

    Parameters
    ----------
    a, b : (D,) endpoints
    coeffs : (n_modes, D), optional (zeros: the straight line)
    curve : "fourier", "bezier" or "polychain"
    """

    def __init__(self, a, b, coeffs=None, n_modes: int = 10, curve: str = "fourier"):
        if curve not in CURVES:
            raise ValueError(f"curve: expected one of {CURVES}, got {curve!r}")
        self.curve = curve
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
        S = basis(self.curve, self.n_modes, t_arr)
        W = (np.outer(1 - t_arr, self.a) + np.outer(t_arr, self.b) + S @ self.coeffs)
        W = W.astype(self.coeffs.dtype, copy=False)
        return W[0] if np.ndim(t) == 0 else W

    def _steps(self, n: int, block: int = 64):
        """The steps w(t_i+1) - w(t_i) between n equally spaced points, in blocks of
        ``block`` points (so memory does not grow with n x D)."""
        t = np.linspace(0.0, 1.0, n)
        for s in range(0, n - 1, block):
            ts = t[s:min(n, s + block + 1)]
            # numpy's own loop over the modes, not a BLAS product whose rounding moves
            # with its thread count: a worker with one BLAS thread measures the length
            # a process with many does
            S = basis(self.curve, self.n_modes, ts)
            W = (np.outer(1 - ts, self.a) + np.outer(ts, self.b)
                 + np.einsum("pk,kd->pd", S, self.coeffs, optimize=False))
            W = W.astype(self.coeffs.dtype, copy=False).astype(np.float64)
            yield np.diff(W, axis=0)

    def length(self, n: int = 1001) -> float:
        """Euclidean length, summed over n equally spaced points."""
        return float(sum(np.linalg.norm(d, axis=1).sum() for d in self._steps(n)))

    def backtracking(self, n: int = 2001) -> float:
        """The fraction of the path's length that runs backwards, against the
        direction from a to b: 0 for a path that only ever advances, larger for one
        that loops back on itself."""
        u = (self.b - self.a).astype(np.float64)
        total = back = 0.0
        for d in self._steps(n):
            step = np.linalg.norm(d, axis=1)
            total += step.sum()
            back += step[d @ u < 0].sum()
        if total == 0 or not np.any(u):
            return 0.0
        return float(back / total)

    def save(self, path) -> None:
        atomic_savez(path, dict(a=self.a, b=self.b, coeffs=self.coeffs,
                                curve=np.array(self.curve)), seal=dict(kind="path"))

    @classmethod
    def load(cls, path) -> "FourierPath":
        try:
            d, _ = load_sealed(path, "path")
            return cls(d["a"], d["b"], d["coeffs"], curve=str(d["curve"]))
        except OSError:
            raise
        except Exception as e:  # a truncated, foreign or edited file
            raise ValueError(f"{os.fspath(path)}: not a valid losstopo path file ({e})") from e

    def __repr__(self) -> str:
        return f"FourierPath(D={self.a.size}, n_modes={self.n_modes}, curve={self.curve!r})"


def _measures(E: np.ndarray, e_a: float, e_b: float) -> dict:
    H = float(np.max(E))
    return dict(barrier=H, barrier_rel=H - max(e_a, e_b), barrier_mean=H - 0.5 * (e_a + e_b))


@dataclass
class PathResult:
    """A found path and the barrier measures along it.

    ``barrier`` is the paper's absolute H = max_m E(w(t_m)) over the M points;
    ``aligned`` says whether b was permuted to match a first (``align=True``), with
    the distance between the endpoints before and after;
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
    aligned: bool = False
    distance_before: Optional[float] = None
    distance_after: Optional[float] = None
    certificate: Optional[object] = None  # a saddles.Certificate, with certify=

    @property
    def straight_barrier(self) -> float:
        return self.straight["barrier"]

    def evaluate(self, landscape, refine: bool = True) -> "PathResult":
        """The same path measured on another landscape (e.g. the test set)."""
        params = dict(self.settings)
        for key in ("seed", "init_scale"):
            params.pop(key, None)
        params["steps"] = 0
        pb = make_path_batch(landscape, self.path.a[None], self.path.b[None], params)
        coeffs = np.ascontiguousarray(self.path.coeffs, dtype=pb.coeffs.dtype)[None]
        return path_results(pb, coeffs, self.history[None], self.settings, refine, 0,
                            measure_grid(landscape))[0]


# How finely a path's maximum is located (PathBatch.measure): a grid `factor` times
# finer than the path's, then `rounds` rounds of `per_round` points around the
# highest point. A landscape may ask for a cheaper search through its own
# ``measure_grid`` (the PyTorch adapter does: its passes are costly).
MEASURE_GRID = dict(factor=10, rounds=3, per_round=32)


def measure_grid(landscape) -> dict:
    return dict(MEASURE_GRID, **(getattr(landscape, "measure_grid", None) or {}))


def path_results(pb, coeffs, history, settings, refine, evaluations, grid=None) -> list:
    """PathResults of the paths of ``pb`` with ``coeffs`` (R, K, D), measured in the core
    (grid, straight line, refined maxima: at most 5 engine calls per path) with the
    refinement ``grid`` (MEASURE_GRID when None)."""
    m = pb.measure(coeffs, [], refine, **(grid or MEASURE_GRID))
    t = pb.t
    A, B = pb.endpoints
    out = []
    for j in range(coeffs.shape[0]):
        path = FourierPath(A[j], B[j], coeffs[j], curve=pb.params.curve)
        E = m["energies"][j]
        e_a, e_b = float(E[0]), float(E[-1])
        Es = m["straight"][j]
        res = PathResult(
            path=path, t=t, losses=E, length=path.length(), history=history[j],
            straight=dict(_measures(Es, e_a, e_b), losses=Es), endpoint_losses=(e_a, e_b),
            evaluations=evaluations, settings=settings, **_measures(E, e_a, e_b),
        )
        if refine:
            res.t_max, res.barrier_refined = float(m["t_max"][j]), float(m["e_max"][j])
            res.straight["t_max"] = float(m["straight_t_max"][j])
            res.straight["barrier_refined"] = float(m["straight_e_max"][j])
        if m["errors"] is not None:
            res.errors = m["errors"][j]
            res.error_barrier = float(res.errors.max())
        out.append(res)
    return out


def path_params(n_modes, n_points, lam, optimizer, lr, steps, objective, temperature,
                line_search, batch_size=None, curve="fourier") -> dict:
    """The path settings as a plain dict (hashable into a configuration); the core's
    ``PathParams.validate()`` checks them, here only types and choices."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if curve not in CURVES:
        raise ValueError(f"curve: expected one of {CURVES}, got {curve!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    for name, v in (("n_modes", n_modes), ("n_points", n_points), ("steps", steps)):
        check_int(name, v, -(2**31), 2**31 - 1)
    p = dict(n_modes=int(n_modes), n_points=int(n_points), lam=float(lam), optimizer=optimizer,
             lr=float(lr), steps=int(steps), objective=objective)
    if temperature is not None:
        p["temperature"] = float(temperature)
    if optimizer == "lbfgs":
        p["lbfgs"] = lbfgs_options(line_search, 10, int(steps), 0.0, 0.0, None)
    if batch_size is not None:
        p["batch_size"] = check_int("batch_size", batch_size)
    if curve != "fourier":  # kept out of the settings at the paper's, as before
        p["curve"] = curve
    _core_params(p)  # validates
    return p


def _core_params(p: dict, seed: int = 0):
    """The core's PathParams of the settings ``p``; ``seed`` draws the samples of
    stochastic steps."""
    from ._native import core

    kw = {k: v for k, v in p.items() if k != "lbfgs"}
    if "batch_size" in kw:
        kw["batch_seed"] = int(seed)
    if "temperature" not in kw:
        kw["auto_temperature"] = True  # 1% of each straight line's barrier
    params = core.PathParams(**kw)
    if "lbfgs" in p:
        params.lbfgs = lbfgs_params(p["lbfgs"])
    params.validate()
    return params


def landscape_kind(landscape):
    """(dtype, parameter count or None, what the core evaluates) of a Landscape (its
    engine) or a batched callable (float64, called back)."""
    if isinstance(landscape, Landscape):
        return landscape.dtype, landscape.num_params, landscape.engine
    if callable(landscape):
        return np.dtype(np.float64), None, landscape
    raise TypeError(f"landscape: expected a Landscape or a callable, got "
                    f"{type(landscape).__name__}")


def make_path_batch(landscape, A, B, params: dict, seed: int = 0):
    """A core PathBatch over a Landscape's engine or a batched callable."""
    from ._native import for_dtype

    dtype, _, target = landscape_kind(landscape)
    if params.get("batch_size") is not None:
        if not isinstance(landscape, Landscape):
            raise ValueError("batch_size: stochastic path steps need a Landscape (a callable "
                             "energy has no samples to draw)")
        if params["batch_size"] > landscape.num_samples:
            raise ValueError(f"batch_size: {params['batch_size']} is more than the landscape's "
                             f"{landscape.num_samples} samples")
    A = np.ascontiguousarray(A, dtype=dtype)
    B = np.ascontiguousarray(B, dtype=dtype)
    return for_dtype("PathBatch", dtype)(target, A, B, _core_params(params, seed))


def _check_start(seed, init_scale) -> None:
    """The initial coefficients' settings: seed an int >= 0, init_scale finite, >= 0."""
    if not (isinstance(init_scale, (int, float, np.number)) and np.isfinite(init_scale)
            and init_scale >= 0):
        raise ValueError(f"init_scale: must be a finite non-negative number, got {init_scale!r}")
    check_int("seed", seed, minimum=0)


def check_endpoint(name, v, D, dtype):
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
    batch_size: Optional[int] = None,
    align: bool = False,
    curve: str = "fourier",
    certify=False,
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
    batch_size : stochastic steps (Adam only; a Landscape only; not the paper's and
        never the default): every step evaluates the path on ``batch_size`` samples
        drawn anew from ``seed`` and the step number, as Garipov et al. train their
        curves. The returned path is then the last iterate, and every reported
        number (energies, barriers) is measured on all samples.
    align : permute b's hidden units to match a first (weight matching,
        :func:`losstopo.align.align`; a Landscape of an MLP or a TorchLandscape): the
        path then joins a to the same function as b, in a's frame. Not the paper's (it
        does no alignment).
    curve : the curve family, all linear in their ``n_modes`` coefficient vectors and
        all through the same batched steps: "fourier" (the paper's sine series),
        "bezier" (Bernstein polynomials of degree n_modes + 1: n_modes = 1 is
        Garipov et al.'s quadratic curve with one control point) or "polychain" (a
        piecewise-linear chain through n_modes pivots at evenly spaced t, as a
        fixed-pivot nudged elastic band). See :func:`basis`.
    certify : False (the paper's fixed-budget barrier only), True or a dict of
        :func:`losstopo.saddles.certify` options: the found path is then refined to a
        minimum-energy path and its maximum certified (``result.certificate``).
    progress : a progress bar on stderr.

    Every step evaluates all path points in one batched call; the best path seen
    (lowest summed energy, without the smoothness term) is returned.
    """
    cert = certify_options(certify)
    params = path_params(n_modes, n_points, lam, optimizer, lr, steps, objective, temperature,
                         line_search, batch_size, curve)
    dtype, D, _ = landscape_kind(landscape)
    a = check_endpoint("a", a, D, dtype)
    b = check_endpoint("b", b, a.size, dtype)
    _check_start(seed, init_scale)
    b, dist = _aligned(landscape, a[None], b[None], align)
    res = _find_paths(landscape, a[None], b, params, refine, seed, init_scale,
                      progress=progress)[0]
    _record_alignment([res], dist)
    if cert is not None:
        from .saddles import certify as certify_path

        res.certificate = certify_path(landscape, res, progress=progress, **cert)
    return res


def refine_curve(landscape, path: FourierPath, steps: int = 100, n_points: int = 50,
                 lam: float = 1e-4, stop_rise: Optional[float] = None, check_every: int = 10,
                 progress: bool = False) -> PathResult:
    """``path``'s curve optimized further by L-BFGS (strong Wolfe line search) on the
    paper's sum objective from its own coefficients, in the same batched steps as
    :func:`find_path` (its basis products held), and measured (``barrier_refined``: the
    curve's maximum on a fine grid, located by golden-section search). The cheap first
    refinement of :func:`losstopo.certify`. With ``stop_rise``, every ``check_every``
    iterations the best curve's points are evaluated once (on a second batch, loss
    only) and the iterations stop once none rises more than ``stop_rise`` above the
    higher endpoint."""
    if not isinstance(path, FourierPath):
        raise TypeError(f"path: expected a FourierPath, got {type(path).__name__}")
    params = path_params(path.n_modes, n_points, lam, "lbfgs", 1e-3, steps, "sum", None,
                         "strong_wolfe", None, path.curve)
    dtype, D, _ = landscape_kind(landscape)
    a = check_endpoint("a", path.a, D, dtype)
    b = check_endpoint("b", path.b, a.size, dtype)
    pb = make_path_batch(landscape, a[None], b[None], params)
    pb.set_coeffs(np.ascontiguousarray(path.coeffs, dtype=dtype)[None])
    bar = Progress(steps, desc="curve (L-BFGS)", enabled=progress)
    check = None if stop_rise is None else make_path_batch(landscape, a[None], b[None], params)
    checked = 0

    def on_step(k):
        nonlocal checked
        bar.set(k)
        if check is None or k == 0 or k % check_every:
            return True
        E = np.asarray(check.objective(pb.best_coeffs, grad=False)[2], np.float64)[0]
        checked += E.size
        return bool(E.max() - max(E[0], E[-1]) > stop_rise)

    try:
        pb.optimize(on_step)
    finally:
        bar.close()
    return path_results(pb, pb.best_coeffs, pb.history, dict(params), True,
                        int(pb.energy_points) + checked, measure_grid(landscape))[0]


def certify_options(certify) -> Optional[dict]:
    """The certify options of ``certify=`` (False/None: none; True: the defaults; a
    dict: those options, checked against :func:`losstopo.saddles.certify`)."""
    if certify is None or certify is False:
        return None
    if certify is True:
        return {}
    if not isinstance(certify, dict):
        raise TypeError(f"certify: expected True, False or a dict of certify options, got "
                        f"{type(certify).__name__}")
    from .saddles import CERTIFY_OPTIONS

    unknown = set(certify) - set(CERTIFY_OPTIONS)
    if unknown:
        raise TypeError(f"certify: unknown option(s) {sorted(unknown)}; expected some of "
                        f"{sorted(CERTIFY_OPTIONS)}")
    return dict(certify)


def _aligned(landscape, A, B, align: bool):
    """B with each row's hidden units permuted to match A's row (when ``align``), and
    the distances (before, after) or None."""
    if not align:
        return B, None
    from .align import align as weight_matching
    from .models import MLP

    net = getattr(landscape, "net", None)
    if type(landscape).__name__ == "TorchLandscape":
        net = landscape  # its permutations are derived from the module
    elif not isinstance(landscape, Landscape) or not isinstance(net, MLP):
        raise TypeError("align: needs a Landscape of an MLP or a TorchLandscape (their "
                        "units are permuted)")
    out = np.empty_like(B)
    before, after = np.empty(len(B)), np.empty(len(B))
    for r in range(len(B)):
        al = weight_matching(net, A[r], B[r])
        out[r], before[r], after[r] = al.theta, al.distance_before, al.distance_after
    return out, (before, after)


def _record_alignment(results, dist) -> None:
    if dist is None:
        return
    for r, res in enumerate(results):
        res.aligned = True
        res.distance_before, res.distance_after = float(dist[0][r]), float(dist[1][r])


# find_path's settings and their defaults (what barrier_matrix passes on).
FIND_PATH_DEFAULTS = {k: v.default for k, v in inspect.signature(find_path).parameters.items()
                      if k not in ("landscape", "a", "b", "progress")}


def _find_paths(landscape, A, B, params: dict, refine: bool, seed: int, init_scale: float,
                progress: bool = False, seeds=None) -> list:
    """Optimizes the paths A[r] -> B[r] together in one core PathBatch (each path takes
    the steps it would take alone) and measures them; a list of PathResults."""
    pb = make_path_batch(landscape, A, B, params, seed)
    R, K, D = len(A), params["n_modes"], A.shape[1]
    if init_scale:
        seeds = [seed] * R if seeds is None else seeds
        pb.set_coeffs(np.stack([init_scale * np.random.default_rng(s).standard_normal((K, D))
                                for s in seeds]))
    bar = Progress(params["steps"], desc="path" if R == 1 else f"{R} paths", enabled=progress)
    try:
        pb.optimize(lambda s: bar.set(s))
    finally:
        bar.close()
    start = np.asarray(pb.history).reshape(R, -1)[:, 0]
    if not np.isfinite(start).all():  # the best path would be the straight line, silently
        what = (f"init_scale={init_scale:g}: the initial curve's coefficients overflow the "
                "landscape's arithmetic; choose a smaller init_scale" if init_scale else
                "the straight line's energy is not finite; check the landscape")
        raise ValueError(f"the path objective is not finite at the first step ({what})")
    out = []
    for j, res in enumerate(path_results(pb, pb.best_coeffs, pb.history, None, refine,
                                         int(pb.energy_points) // R, measure_grid(landscape))):
        s = seed if seeds is None else seeds[j]
        res.settings = dict(params, seed=int(s), init_scale=float(init_scale))
        out.append(res)
    return out


_RECORD = ("barrier", "barrier_rel", "barrier_mean", "barrier_refined", "length",
           "straight_barrier", "error_barrier", "losses")
_ALIGN_RECORD = ("distance_before", "distance_after")  # recorded with align=True
# recorded with certify= (saddles.Certificate.summary()): numbers, then texts
_CERT_RECORD = ("cert_barrier", "cert_barrier_rel", "saddle_grad_norm", "saddle_eigenvalue",
                "saddle_eigenvalue2", "saddle_top_eigenvalue", "cert_minima",
                "cert_iterations", "cert_gradients", "cert_hessian_vector")
_CERT_TEXT = ("cert_status", "cert_reason")


def _certificate_record(landscape, result, options: dict) -> dict:
    """The numbers barrier_matrix records of a path's certificate. Endpoints that are
    not minima give a bound with that reason (``endpoints="bound"`` unless the options
    say otherwise), so the other pairs of the matrix go on."""
    from .saddles import certify as certify_path

    c = certify_path(landscape, result, **{"endpoints": "bound", **options})
    s = c.summary()
    return dict(cert_status=c.status, cert_reason=c.reason, cert_barrier=c.barrier,
                cert_barrier_rel=c.barrier_rel, saddle_grad_norm=s["saddle_grad_norm"],
                saddle_eigenvalue=s["saddle_eigenvalue"],
                saddle_eigenvalue2=s["saddle_eigenvalue2"],
                saddle_top_eigenvalue=s["saddle_top_eigenvalue"], cert_minima=s["minima"],
                cert_iterations=s["iterations"], cert_gradients=s["gradients"],
                cert_hessian_vector=s["hessian_vector"])


def _pair_records(landscape, thetas, params: dict, refine: bool, seed: int,
                  init_scale: float, align: bool, cert, pairs) -> list:
    """The numbers barrier_matrix records for the pairs (k, 2) of thetas (checked, in
    the landscape's dtype), found together in one core batch: one dict per pair (NaN
    where not defined). A task of its own: the shared arguments first."""
    A, B = thetas[pairs[:, 0]], thetas[pairs[:, 1]]
    B, dist = _aligned(landscape, A, B, align)
    results = _find_paths(landscape, A, B, params, refine, seed, init_scale)
    _record_alignment(results, dist)
    out = []
    for r in results:
        out.append(dict(
            distance_before=np.nan if r.distance_before is None else r.distance_before,
            distance_after=np.nan if r.distance_after is None else r.distance_after,
            barrier=r.barrier, barrier_rel=r.barrier_rel, barrier_mean=r.barrier_mean,
            barrier_refined=np.nan if r.barrier_refined is None else r.barrier_refined,
            length=r.length, straight_barrier=r.straight_barrier,
            error_barrier=np.nan if r.error_barrier is None else r.error_barrier,
            losses=r.losses, **({} if cert is None else
                                _certificate_record(landscape, r, cert))))
    return out


def barrier_matrix(landscape, thetas, pairs=300, seed: int = 0, out=None,
                   progress: bool = True, chunk: int = 4, client=None, **find_path_kwargs):
    """Paths and barriers for pairs of a set of solutions.

    Parameters
    ----------
    landscape : Landscape or callable
    thetas : (n, D) solutions
    pairs : int (random distinct pairs i < j, at most all of them) or (k, 2) indices
    out : path, optional
        Each finished chunk of pairs is saved there at once (atomically); a rerun with
        the same arguments skips finished pairs, so an interrupted run resumes.
    chunk : pairs optimized together in one core call (each path's numbers are those
        it would have alone, so the chunk size changes speed and memory only).
    client : a ``dask.distributed.Client``, optional
        Runs the chunks as tasks on its cluster: the landscape and the solutions
        travel to each worker once, each worker's engine uses the cores it was given,
        and finished chunks are written to ``out`` here as they arrive (only this
        process writes). The numbers equal a single-process run whose engine has the
        workers' thread count. Needs ``pip install "losstopo[distributed]"``.
    find_path_kwargs : passed to :func:`find_path` (progress is per chunk here);
        ``certify=`` certifies every pair's barrier (see :func:`losstopo.certify`).

    Returns
    -------
    dict of arrays over the pairs: ``pairs`` (k, 2), ``barrier``, ``barrier_rel``,
    ``barrier_mean``, ``barrier_refined``, ``length``, ``straight_barrier``,
    ``error_barrier`` (NaN where not defined), ``losses`` (k, n_points) the energy
    profiles, and ``done`` (bool); with ``align=True`` (each pair's second endpoint
    permuted to match the first) also ``distance_before`` and ``distance_after``;
    with ``certify=`` also ``cert_status`` ("certified", "barrier-free", "bound only",
    "" while not done), ``cert_reason``, ``cert_barrier`` (the certified barrier, or the
    refined path's maximum where only a bound), ``cert_barrier_rel``, the saddle's
    ``saddle_grad_norm``, ``saddle_eigenvalue`` (lowest), ``saddle_eigenvalue2``,
    ``saddle_top_eigenvalue``, ``cert_minima`` (intermediate minima found) and the
    cost: ``cert_iterations``, ``cert_gradients``, ``cert_hessian_vector``. A pair
    whose endpoints are not minima is a bound with that reason (its band refined all
    the same: ``endpoints="bound"``, unless ``certify`` says otherwise).
    """
    thetas = np.asarray(thetas)
    if thetas.ndim != 2 or thetas.shape[0] < 2:
        raise ValueError(f"thetas: expected shape (n >= 2, D), got {thetas.shape}")
    chunk = check_int("chunk", chunk)
    n = thetas.shape[0]
    idx = choose_pairs(pairs, n, seed)
    k = len(idx)
    keys = ("barrier", "barrier_rel", "barrier_mean", "barrier_refined", "length",
            "straight_barrier", "error_barrier")
    if find_path_kwargs.get("align"):
        keys += _ALIGN_RECORD
    cert = certify_options(find_path_kwargs.get("certify"))
    if cert is not None:
        keys += _CERT_RECORD
    res = {key: np.full(k, np.nan) for key in keys}
    if cert is not None:
        for key in _CERT_TEXT:
            res[key] = np.full(k, "", dtype="U400")
    res["pairs"] = idx
    res["done"] = np.zeros(k, dtype=bool)
    fp = dict(find_path_kwargs)
    fp.pop("progress", None)
    unknown = set(fp) - set(FIND_PATH_DEFAULTS)
    if unknown:
        raise TypeError(f"barrier_matrix: unknown argument(s) {sorted(unknown)}")
    args = {**FIND_PATH_DEFAULTS, **fp}
    params = path_params(*(args[a] for a in ("n_modes", "n_points", "lam", "optimizer", "lr",
                                             "steps", "objective", "temperature",
                                             "line_search", "batch_size", "curve")))
    M = params["n_points"]
    res["losses"] = np.full((k, M), np.nan)  # the energy profile along each path
    # The file is keyed by everything its numbers depend on: the landscape (data,
    # network, dtype), the solutions, the pairs and every path setting.
    config = dict(pairs=idx.tolist(), landscape=_landscape_key(landscape),
                  settings=dict(params, refine=bool(args["refine"]), seed=int(args["seed"]),
                                **({"align": True} if args["align"] else {}),
                                **({} if cert is None else {"certify": _jsonable(cert)}),
                                init_scale=float(args["init_scale"])),
                  thetas=hashlib.sha256(np.ascontiguousarray(thetas).tobytes()).hexdigest()[:16])
    chash = config_hash(config)
    if out is not None and os.path.exists(out):
        try:
            old, meta = load_sealed(out, "barrier_matrix")
        except Exception as e:
            raise ValueError(f"out {out}: unreadable ({e}); delete it to start afresh") from e
        if meta.get("config_hash") != chash:
            raise ValueError(f"out {out} holds pairs of a different configuration (landscape, "
                             "solutions, pairs or path settings); use another path or delete it")
        for key in res:  # the arrays must be the ones this call would write
            got = old.get(key)
            if (got is None or got.shape != res[key].shape
                    or got.dtype.kind != res[key].dtype.kind
                    or (key == "pairs" and not np.array_equal(got, idx))):
                raise ValueError(f"out {out}: array {key!r} is not what barrier_matrix wrote "
                                 "for these pairs; delete the file to start afresh")
            res[key] = got
    dtype, D, _ = landscape_kind(landscape)
    _check_start(args["seed"], args["init_scale"])
    for i in np.unique(idx):  # every endpoint checked before any work starts
        check_endpoint("thetas[%d]" % i, thetas[i], D, dtype)
    todo = np.nonzero(~res["done"])[0]
    chunks = [todo[c0:c0 + chunk] for c0 in range(0, len(todo), chunk)]
    shared = (landscape, np.ascontiguousarray(thetas, dtype=dtype), params,
              bool(args["refine"]), args["seed"], args["init_scale"], bool(args["align"]),
              cert)
    finished = run_tasks(client, _pair_records, shared, [idx[rows] for rows in chunks],
                         key="losstopo-pairs")
    bar = Progress(k, desc="pairs", enabled=progress)
    bar.set(int(res["done"].sum()))
    try:
        for c, records in finished:
            rows = chunks[c]
            for j, rec in zip(rows, records):
                for key in (_RECORD + (_ALIGN_RECORD if args["align"] else ())
                            + (() if cert is None else _CERT_RECORD + _CERT_TEXT)):
                    res[key][j] = rec[key]
                res["done"][j] = True
            if out is not None:
                atomic_savez(out, res, seal=dict(kind="barrier_matrix", config_hash=chash))
            bar.update(len(rows), postfix=f"barrier {records[-1]['barrier']:.4g}")
    finally:
        finished.close()  # cancels what still runs on a cluster
        bar.close()
    return res


def _jsonable(options: dict) -> dict:
    """Certify options as plain JSON values (the file's key)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sorted(options.items())}


def _landscape_key(landscape) -> dict:
    """What identifies a landscape's numbers: for a Landscape its data fingerprint,
    network and dtype; for an objective with a fingerprint of its own (TorchLandscape:
    data, module, parameters, dtype) that; for any other callable its type and repr."""
    if isinstance(landscape, Landscape):
        return dict(data=landscape.fingerprint, net=landscape.net.to_dict(),
                    dtype=landscape.dtype.name)
    fp = getattr(landscape, "fingerprint", None)
    if isinstance(fp, str):
        return dict(callable=type(landscape).__qualname__, fingerprint=fp)
    return dict(callable=type(landscape).__qualname__, repr=repr(landscape))


def choose_pairs(pairs, n, seed) -> np.ndarray:
    """The pairs (k, 2) of ``n`` solutions that barrier_matrix runs: ``pairs`` random
    distinct pairs (i < j) drawn with ``seed`` when an int, else the given index pairs,
    checked. Shared by every caller that must name the same pairs."""
    if isinstance(pairs, (int, np.integer)) and not isinstance(pairs, bool):
        if pairs < 1:
            raise ValueError(f"pairs: must be at least 1, got {pairs}")
        total = n * (n - 1) // 2
        rng = np.random.default_rng(seed)
        if total <= 2_000_000:  # all pairs, a random selection of them
            iu = np.stack(np.triu_indices(n, 1), axis=1)
            sel = rng.permutation(len(iu))[: min(int(pairs), len(iu))]
            return iu[np.sort(sel)]
        # Too many to list: draw distinct pairs (i < j) without materializing them.
        k = min(int(pairs), total)
        if k > 1_000_000:
            raise ValueError(f"pairs: {k} pairs is more than a study can run; ask for fewer")
        chosen = set()
        while len(chosen) < k:
            i, j = rng.integers(0, n, 2)
            if i != j:
                chosen.add((int(min(i, j)), int(max(i, j))))
        return np.array(sorted(chosen), dtype=np.int64)
    idx = np.asarray(pairs)
    if idx.ndim != 2 or idx.shape[1] != 2 or idx.dtype.kind not in "iu":
        raise ValueError("pairs: expected an int or an integer array of shape (k, 2)")
    if idx.shape[0] == 0:
        raise ValueError("pairs: no pairs given")
    if idx.min() < 0 or idx.max() >= n or (idx[:, 0] == idx[:, 1]).any():
        raise ValueError(f"pairs: indices must lie in [0, {n}) and differ within a pair")
    return idx.astype(np.int64)
