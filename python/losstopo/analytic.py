"""Analytic test landscapes with exact gradients, in the batched form f(X) -> (E, G)."""

from __future__ import annotations

from typing import Optional

import numpy as np


class AnalyticLandscape:
    """A 2-D energy in the batched callable form used by the optimizers and paths.

    ``f(X (P, 2)) -> (E (P,), G (P, 2))``, float64. Attributes: ``name``,
    ``formula``, ``endpoints`` (a, b) for path studies, ``minima`` (k, 2) and
    ``saddles`` (k, 2) where known.
    """

    def __init__(self, name, formula, energy_and_grad, endpoints, minima, saddles=None,
                 bounds=((-1.5, 1.5), (-1.0, 1.5))):
        self.name = name
        self.formula = formula
        self._f = energy_and_grad
        self.endpoints = tuple(np.asarray(e, dtype=np.float64) for e in endpoints)
        self.minima = np.asarray(minima, dtype=np.float64)
        self.saddles = None if saddles is None else np.asarray(saddles, dtype=np.float64)
        self.bounds = bounds
        self.num_params = 2

    def __call__(self, X):
        X = np.asarray(X, dtype=np.float64)
        single = X.ndim == 1
        E, G = self._f(X.reshape(-1, 2))
        return (E[0], G[0]) if single else (E, G)

    def energy(self, X) -> np.ndarray:
        return self(X)[0]

    def __repr__(self) -> str:
        return f"<landscape {self.name}: {self.formula}>"


def _refine(f, points):
    from scipy.optimize import minimize

    out = []
    for p in points:
        r = minimize(lambda x: f(x[None])[0][0], p, jac=lambda x: f(x[None])[1][0],
                     method="BFGS", options=dict(gtol=1e-12))
        out.append(r.x)
    return np.array(out)


def _gaussians(c, d, C, wide=3.0, narrow=15.0):
    c = np.asarray(c, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)

    def f(X):
        E = np.full(len(X), C)
        G = np.zeros_like(X)
        for ci in c:
            r = X - ci
            e = np.exp(-wide * np.sum(r * r, axis=1))
            E -= e
            G += 2 * wide * r * e[:, None]
        for dj in d:
            r = X - dj
            e = np.exp(-narrow * np.sum(r * r, axis=1))
            E += e
            G -= 2 * narrow * r * e[:, None]
        return E, G

    return f


def toy_gaussians() -> AnalyticLandscape:
    """The 2-D landscape of Yu & Morozov's Fig. 3.

    f(r) = -sum_i exp(-3 |r - c_i|^2) + sum_j exp(-15 |r - d_j|^2) + C, with
    c = (-0.5, -0.5), (0.5, 0); d = (-0.2, -0.4), (0, 0.3); C = 1.0190055296306975.
    Endpoints (-0.62, -0.54) and (0.49, -0.02). With M = 100 points the straight
    line's barrier is 1.102; the paper's paths reach 0.640 - 0.652; the lowest
    possible barrier (the saddle between the two wells) is about 0.624.
    """
    c = [(-0.5, -0.5), (0.5, 0.0)]
    d = [(-0.2, -0.4), (0.0, 0.3)]
    f = _gaussians(c, d, 1.0190055296306975)
    minima = _refine(f, c)
    return AnalyticLandscape(
        "toy_gaussians",
        "-sum_i exp(-3|r-c_i|^2) + sum_j exp(-15|r-d_j|^2) + C",
        f, endpoints=[(-0.62, -0.54), (0.49, -0.02)], minima=minima,
        bounds=((-1.0, 1.0), (-1.0, 0.8)),
    )


def muller_brown(scale: Optional[float] = None) -> AnalyticLandscape:
    """The Muller-Brown potential, the classic test of reaction-path methods.

    V(x, y) = sum_k A_k exp(a_k (x - x_k)^2 + b_k (x - x_k)(y - y_k) + c_k (y - y_k)^2)
    with A = (-200, -100, -170, 15), a = (-1, -1, -6.5, 0.7), b = (0, 0, 11, 0.6),
    c = (-10, -10, -6.5, 0.7), x_k = (1, 0, -0.5, -1), y_k = (0, 0.5, 1.5, 1).
    Three minima (V = -146.70, -108.17, -80.77) joined through two saddles
    (V = -40.66 and -72.25). ``scale`` multiplies V (e.g. 0.01 for unit-sized
    barriers). Endpoints: the deepest minimum and the second one.
    """
    A = np.array([-200.0, -100.0, -170.0, 15.0])
    a = np.array([-1.0, -1.0, -6.5, 0.7])
    b = np.array([0.0, 0.0, 11.0, 0.6])
    cc = np.array([-10.0, -10.0, -6.5, 0.7])
    x0 = np.array([1.0, 0.0, -0.5, -1.0])
    y0 = np.array([0.0, 0.5, 1.5, 1.0])
    s = 1.0 if scale is None else float(scale)

    def f(X):
        dx = X[:, :1] - x0
        dy = X[:, 1:] - y0
        # far from the region of interest V -> +inf (a line search's trial step)
        with np.errstate(over="ignore", invalid="ignore"):
            e = A * np.exp(a * dx * dx + b * dx * dy + cc * dy * dy)
            E = e.sum(axis=1)
            gx = (e * (2 * a * dx + b * dy)).sum(axis=1)
            gy = (e * (b * dx + 2 * cc * dy)).sum(axis=1)
        return s * E, s * np.stack([gx, gy], axis=1)

    minima = _refine(f, [(-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467)])
    saddles = np.array([(-0.822, 0.624), (0.212, 0.293)])
    return AnalyticLandscape(
        "muller_brown",
        "sum_k A_k exp(a_k (x-x_k)^2 + b_k (x-x_k)(y-y_k) + c_k (y-y_k)^2)",
        f, endpoints=[minima[0], minima[1]], minima=minima, saddles=saddles,
        bounds=((-1.5, 1.2), (-0.5, 2.0)),
    )
