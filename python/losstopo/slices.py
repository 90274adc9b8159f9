"""1-D and 2-D slices of a landscape: the loss (and accuracy) at theta + x d1 (+ y d2)
on a grid, every point a combination of three vectors, so the native engine computes
the first layer of a whole grid from three products (the combinations capability).

Directions: filter-normalized random directions as Li et al. (2018) define them for
fully connected layers (each neuron's incoming weights rescaled to the norm of
theta's; biases get no direction), plain random directions scaled to theta's norm,
the principal components of a set of solutions, the plane through three solutions,
or the caller's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ._checks import check_int, check_point
from .progress import Progress


def filter_normalized(net, theta, rng=None, seed: int = 0) -> np.ndarray:
    """A Gaussian direction with each neuron's incoming weights (a row of each layer's
    weight matrix) rescaled to the norm of that row of theta; zero for the biases."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (net.num_params,):
        raise ValueError(f"theta: expected shape ({net.num_params},), got {theta.shape}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    d = np.zeros_like(theta)
    off = 0
    for a, b in zip(net.sizes[:-1], net.sizes[1:]):
        W = theta[off: off + a * b].reshape(b, a)
        R = rng.standard_normal((b, a))
        norms = np.linalg.norm(R, axis=1, keepdims=True)
        d[off: off + a * b] = (R * np.linalg.norm(W, axis=1, keepdims=True)
                               / np.where(norms > 0, norms, 1.0)).reshape(-1)
        off += a * b + (b if net.bias else 0)
    return d


@dataclass
class Slice:
    """Loss (and accuracy) on the grid: values[i, j] at theta + xs[j] d1 + ys[i] d2
    (2-D) or values[j] at theta + xs[j] d1 (1-D). ``marks`` are the coordinates of
    named points (solutions) in the plane."""

    theta: np.ndarray
    directions: np.ndarray          # (1 or 2, D)
    xs: np.ndarray
    ys: Optional[np.ndarray]
    loss: np.ndarray
    accuracy: Optional[np.ndarray] = None
    marks: dict = field(default_factory=dict)
    kind: str = ""


def _directions(landscape, theta, directions, solutions, seed, count):
    D = int(landscape.num_params)
    rng = np.random.default_rng(seed)
    marks = {}
    if isinstance(directions, str):
        if directions == "filter":
            net = getattr(landscape, "net", None)
            if net is None:
                raise ValueError("directions='filter' needs a network landscape (its layers)")
            dirs = [filter_normalized(net, theta, rng) for _ in range(count)]
        elif directions == "random":
            dirs = []
            for _ in range(count):
                r = rng.standard_normal(D)
                dirs.append(r * np.linalg.norm(theta) / np.linalg.norm(r))
        elif directions == "pca":
            if solutions is None or len(solutions) < count + 1:
                raise ValueError(f"directions='pca' needs at least {count + 1} solutions")
            S = np.asarray(solutions, dtype=np.float64)
            _, _, Vt = np.linalg.svd(S - S.mean(axis=0), full_matrices=False)
            dirs = []
            for k in range(count):
                proj = (S - theta) @ Vt[k]
                dirs.append(Vt[k] * max(np.abs(proj).max(), 1e-12))  # solutions within [-1, 1]
            coords = np.stack([(S - theta) @ d / (d @ d) for d in dirs], axis=1)
            marks = {f"solution {i}": tuple(float(v) for v in c) for i, c in enumerate(coords)}
        else:
            raise ValueError(f"directions: expected 'filter', 'random', 'pca' or arrays, got "
                             f"{directions!r}")
    else:
        dirs = [np.asarray(d, dtype=np.float64) for d in directions]
        if len(dirs) != count or any(d.shape != (D,) for d in dirs):
            raise ValueError(f"directions: expected {count} arrays of shape ({D},)")
    dirs = np.stack(dirs)
    if not np.isfinite(dirs).all() or np.any(np.linalg.norm(dirs, axis=1) == 0):
        raise ValueError("directions: need finite, non-zero directions")
    return dirs, marks


def _evaluate(landscape, V: np.ndarray, coef: np.ndarray, want_acc: bool, chunk: int,
              progress: bool, desc: str):
    """Loss (and accuracy) at coef @ V, through the engine's combinations where
    offered, else point by point in blocks."""
    engine = getattr(landscape, "engine", None)
    comb = engine is not None and getattr(engine, "offers_combinations", False)
    dtype = np.dtype(getattr(landscape, "dtype", np.float64))
    n = coef.shape[0]
    loss = np.empty(n)
    acc = np.empty(n) if want_acc else None
    bar = Progress(n, desc, enabled=progress)
    Vd = np.ascontiguousarray(V, dtype=dtype)
    for s in range(0, n, chunk):
        c = coef[s: s + chunk]
        if comb:
            idx = np.tile(np.arange(V.shape[0], dtype=np.int32), (c.shape[0], 1))
            out = engine.evaluate_combination(Vd, idx, np.ascontiguousarray(c, dtype=dtype),
                                              None, want_acc)
            if want_acc:
                loss[s: s + len(c)], acc[s: s + len(c)] = out
            else:
                loss[s: s + len(c)] = out
        else:
            pts = c @ V
            loss[s: s + len(c)] = landscape.loss(pts)
            if want_acc:
                acc[s: s + len(c)] = landscape.accuracy(pts)
        bar.update(len(c))
    bar.close()
    return loss, acc


def _axis(span, n, name):
    if np.isscalar(span):
        if not (span > 0 and np.isfinite(span)):
            raise ValueError(f"{name}: must be a finite positive number, got {span}")
        return np.linspace(-float(span), float(span), n)
    lo, hi = (float(v) for v in span)
    if not (hi > lo and np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name}: expected finite (low, high) with high > low, got {span}")
    return np.linspace(lo, hi, n)


def slice1d(landscape, theta, direction: Union[str, np.ndarray] = "filter", n: int = 51,
            span: Union[float, Tuple[float, float]] = 1.0, seed: int = 0,
            accuracy: Optional[bool] = None, progress: bool = False) -> Slice:
    """Loss (and accuracy for classifiers) at theta + x d for n values of x in
    [-span, span] (or the given (low, high))."""
    t = check_point(landscape, theta)
    n = check_int("n", n, minimum=2)
    dirs, _ = _directions(landscape, t, direction if isinstance(direction, str) else [direction],
                          None, seed, 1)
    xs = _axis(span, n, "span")
    want_acc = bool(getattr(landscape, "classifier", False)) if accuracy is None else accuracy
    coef = np.stack([np.ones(n), xs], axis=1)
    loss, acc = _evaluate(landscape, np.stack([t, dirs[0]]), coef, want_acc, 256, progress,
                          "slice1d")
    kind = direction if isinstance(direction, str) else "given"
    return Slice(t, dirs, xs, None, loss, acc, {"theta": (0.0,)}, kind)


def slice2d(landscape, theta, directions: Union[str, Sequence[np.ndarray]] = "filter",
            n: int = 51, span: Union[float, Tuple[float, float, float, float]] = 1.0,
            solutions=None, seed: int = 0, accuracy: Optional[bool] = None,
            chunk: int = 256, progress: bool = False) -> Slice:
    """Loss (and accuracy for classifiers) on an n x n grid of the plane
    theta + x d1 + y d2.

    directions: "filter" (two filter-normalized random directions), "random",
    "pca" (the two leading principal components of ``solutions``, scaled so that
    the solutions lie within [-1, 1]), "plane" (the plane through three
    ``solutions``: theta = solutions[0], d1 = solutions[1] - solutions[0], d2 the
    part of solutions[2] - solutions[0] orthogonal to d1; they sit at (0, 0), (1, 0)
    and (c, 1)), or two arrays. span: a half-width, or (x0, x1, y0, y1).
    """
    n = check_int("n", n, minimum=2)
    chunk = check_int("chunk", chunk)
    if isinstance(directions, str) and directions == "plane":
        if solutions is None or len(solutions) != 3:
            raise ValueError("directions='plane' needs exactly three solutions")
        S = np.asarray(solutions, dtype=np.float64)
        if S.shape[1:] != (int(landscape.num_params),):
            raise ValueError(f"solutions: expected shape (3, {landscape.num_params})")
        t = S[0]
        d1 = S[1] - S[0]
        w = S[2] - S[0]
        c = (w @ d1) / (d1 @ d1)
        d2 = w - c * d1
        dirs, _ = _directions(landscape, t, [d1, d2], None, seed, 2)
        marks = {"solution 0": (0.0, 0.0), "solution 1": (1.0, 0.0), "solution 2": (float(c), 1.0)}
        if np.isscalar(span) and span == 1.0:
            span = (min(0.0, c) - 0.25, max(1.0, c) + 0.25, -0.25, 1.25)
    else:
        t = check_point(landscape, theta)
        dirs, marks = _directions(landscape, t, directions, solutions, seed, 2)
        marks = {"theta": (0.0, 0.0), **marks}
    if np.isscalar(span):
        xs, ys = _axis(span, n, "span"), _axis(span, n, "span")
    else:
        if len(span) != 4:
            raise ValueError("span: expected a half-width or (x0, x1, y0, y1)")
        xs, ys = _axis(span[:2], n, "span"), _axis(span[2:], n, "span")
    want_acc = bool(getattr(landscape, "classifier", False)) if accuracy is None else accuracy
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    coef = np.stack([np.ones(n * n), X.reshape(-1), Y.reshape(-1)], axis=1)
    loss, acc = _evaluate(landscape, np.concatenate([t[None], dirs]), coef, want_acc, chunk,
                          progress, "slice2d")
    kind = directions if isinstance(directions, str) else "given"
    return Slice(t, dirs, xs, ys, loss.reshape(n, n),
                 None if acc is None else acc.reshape(n, n), marks, kind)
