"""General minimization with the compiled L-BFGS: one problem or a batch in lockstep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .landscape import Landscape

LINE_SEARCHES = ("golden", "strong_wolfe")


@dataclass
class OptimizeResult:
    """Result of :func:`minimize`, in the style of ``scipy.optimize.OptimizeResult``.

    For a single problem the fields are scalars and ``x``, ``jac`` are (D,); for a
    batch of R problems they are (R,) arrays and (R, D) arrays, and ``message`` is a
    list.
    """

    x: np.ndarray
    fun: Any
    jac: np.ndarray
    nit: Any
    nfev: Any
    njev: Any
    status: Any
    success: Any
    message: Any

    def __getitem__(self, key):
        return getattr(self, key)


def option_fields() -> dict:
    """The ``options`` keys of the L-BFGS line searches and the LBFGSParams field each
    sets (``golden_init`` -> ``golden.init``), read off the bound C++ structs (every
    field of GoldenParams and WolfeParams, and min_cos)."""
    from ._native import core

    fields = {"min_cos": "min_cos"}
    for sub, struct in (("golden", core.GoldenParams()), ("wolfe", core.WolfeParams())):
        for name in dir(struct):
            if not name.startswith("_") and not callable(getattr(struct, name)):
                fields[f"{sub}_{name}"] = f"{sub}.{name}"
    return fields


def lbfgs_options(line_search, history, max_iter, gtol, ftol, options) -> dict:
    """The L-BFGS settings as a plain dict (hashable into a configuration), checked by
    the core's ``LBFGSParams.validate()``; here only types and choices."""
    if line_search not in LINE_SEARCHES:
        raise ValueError(f"line_search: expected one of {LINE_SEARCHES}, got {line_search!r}")
    for name, v in (("history", history), ("max_iter", max_iter)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected an int, got {v!r}")
    opts = dict(line_search=line_search, history=int(history), max_iter=int(max_iter),
                gtol=float(gtol), ftol=float(ftol))
    known = option_fields()
    for k, v in (options or {}).items():
        if k not in known:
            raise ValueError(f"options: unknown key {k!r} (known: {sorted(known)})")
        opts[k] = v
    lbfgs_params(opts)  # validates
    return opts


def lbfgs_params(opts: dict):
    """``core.LBFGSParams`` from the dict of :func:`lbfgs_options`, validated by the core.
    The core's message names its field (``golden.init``); it reaches the caller under
    the key the caller set (``golden_init``)."""
    from ._native import core

    p = core.LBFGSParams()
    fields = option_fields()
    for k, v in opts.items():
        target, name = p, fields.get(k, k)
        if "." in name:
            sub, name = name.split(".")
            target = getattr(p, sub)
        try:
            setattr(target, name, v)
        except TypeError as e:
            raise TypeError(f"{k}: expected a number, got {v!r}") from e
    try:
        p.validate()
    except ValueError as e:
        msg = str(e)
        for key, field in fields.items():
            if key in opts and key != field:
                msg = msg.replace(field, key)
        raise ValueError(msg) from None
    return p


def minimize(
    fun,
    x0,
    method: str = "lbfgs",
    line_search: str = "golden",
    history: int = 10,
    max_iter: int = 1000,
    gtol: float = 1e-5,
    ftol: float = 0.0,
    callback: Optional[Callable] = None,
    options: Optional[dict] = None,
) -> OptimizeResult:
    """Minimize with L-BFGS (two-loop recursion) and the chosen line search.

    Parameters
    ----------
    fun : callable or Landscape
        One problem: ``fun(x (D,)) -> (value, grad (D,))``. A batch (``x0`` of shape
        (R, D)): ``fun(X (R', D)) -> (values (R',), grads (R', D))`` for any subset
        of R' <= R problems. A :class:`Landscape` is evaluated natively.
    x0 : array (D,) or (R, D)
        Starting point(s); float32 or float64 keeps that precision, other types
        become float64 (a Landscape imposes its own dtype).
    method : "lbfgs"
    line_search : "golden" (the paper's golden-section search) or "strong_wolfe"
    history : int
        Pairs kept (m).
    max_iter, gtol, ftol :
        Stop after max_iter iterations, when max |g_i| <= gtol, or when the
        relative reduction (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol.
    callback : callable, optional
        ``callback(xk)`` after every iteration with the current x ((D,) or (R, D));
        returning True stops.
    options : dict, optional
        Line-search settings: golden_init (0.2), golden_expand (0.8), golden_xtol
        (1e-4), golden_ftol (1e-4), golden_max_evals (6), wolfe_c1 (1e-4), wolfe_c2
        (0.9), wolfe_max_evals (20), wolfe_max_step_factor (1e3), and min_cos (1e-4),
        the history-reset test: each ``<search>_<field>`` sets that field of the core's
        LBFGSParams (``golden_init`` is ``LBFGSParams.golden.init``).

    Every batched problem has its own history and line search; all advance in
    lockstep, one batched evaluation per line-search round, and finished problems
    drop out.
    """
    from ._native import core

    if method != "lbfgs":
        raise ValueError(f"method: only 'lbfgs' is available, got {method!r}")
    opts = lbfgs_options(line_search, history, max_iter, gtol, ftol, options)
    x0 = np.asarray(x0)
    if x0.dtype.kind not in "fiu" or x0.dtype == np.bool_:
        raise TypeError(f"x0: expected a real array, got dtype {x0.dtype}")
    if x0.ndim not in (1, 2) or x0.size == 0:
        raise ValueError(f"x0: expected shape (D,) or (R, D), got {x0.shape}")
    single = x0.ndim == 1
    if isinstance(fun, Landscape):
        dtype = fun.dtype
        if x0.shape[-1] != fun.num_params:
            raise ValueError(f"x0: expected length {fun.num_params}, got {x0.shape[-1]}")
        target = fun.engine
    elif callable(fun):
        dtype = x0.dtype if x0.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        target = _single(fun) if single else fun
    else:
        raise TypeError(f"fun: expected a callable or a Landscape, got {type(fun).__name__}")
    X0 = np.ascontiguousarray(x0.reshape(-1, x0.shape[-1]), dtype=dtype)
    if not np.isfinite(X0).all():
        raise ValueError("x0: contains NaN or Inf")
    cb = None
    if callback is not None:
        def cb(xk):
            return bool(callback(xk[0] if single else xk))
    run = core.minimize_lbfgs_f32 if dtype == np.float32 else core.minimize_lbfgs_f64
    params = lbfgs_params(opts)
    # Golden-section lines on an engine that prepares them continue each problem's
    # last line (no new first-layer product of x), afresh every 10 iterations.
    params.carry_lines = 10
    out = run(target, X0, params, cb)
    success = np.isin(out["status"], (1, 2))
    if single:
        return OptimizeResult(
            x=out["x"][0], fun=out["fun"][0].item(), jac=out["jac"][0], nit=int(out["nit"][0]),
            nfev=int(out["nfev"][0]), njev=int(out["njev"][0]), status=int(out["status"][0]),
            success=bool(success[0]), message=out["message"][0],
        )
    return OptimizeResult(
        x=out["x"], fun=out["fun"], jac=out["jac"], nit=out["nit"], nfev=out["nfev"],
        njev=out["njev"], status=out["status"], success=success, message=out["message"],
    )


def _single(fun):
    """Adapts fun(x) -> (value, grad) to the batched form for one problem."""

    def batched(X):
        out = fun(X[0])
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError("fun: must return a tuple (value, grad)")
        v, g = out
        return np.atleast_1d(np.asarray(v)), np.asarray(g)[None, :]

    return batched


def line_search(phi, f0: float, slope0: float, scale: float, kind: str = "golden",
                options: Optional[dict] = None):
    """Runs one line search on a 1-D function, for study and tests.

    ``phi(u) -> (value, slope)`` is the function along the search direction (u >= 0),
    ``f0`` and ``slope0`` its value and slope at 0, ``scale`` the length of the
    quasi-Newton step. Returns ``(step, value, trials)``: the accepted step (0 when
    no point below f0 was found), its value, and the list of evaluated u.
    """
    from ._native import core

    if kind not in LINE_SEARCHES:
        raise ValueError(f"kind: expected one of {LINE_SEARCHES}, got {kind!r}")
    opts = lbfgs_options(kind, 10, 0, 0.0, 0.0, options)
    step, value, trials = core.line_search_1d(phi, float(f0), float(slope0), float(scale),
                                              lbfgs_params(opts))
    return step, value, list(trials)
