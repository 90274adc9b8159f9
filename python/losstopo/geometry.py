"""Geometry of solution sets: spread, weight statistics, distances, separation."""

from __future__ import annotations

import numpy as np

from .kpca import sq_distances


def _set(name, A) -> np.ndarray:
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] < 1:
        raise ValueError(f"{name}: expected shape (n, D), got {A.shape}")
    return A


def centroid_distances(A, B):
    """Distances of every vector of A and of B from the common centroid of A and B.

    Returns (dA (len(A),), dB (len(B),)) - the paper's Fig. 5.
    """
    A, B = _set("A", A), _set("B", B)
    if A.shape[1] != B.shape[1]:
        raise ValueError("A, B: vectors of different lengths")
    c = np.concatenate([A, B]).astype(np.float64).mean(axis=0)
    return (np.linalg.norm(A.astype(np.float64) - c, axis=1),
            np.linalg.norm(B.astype(np.float64) - c, axis=1))


def weight_stats(thetas) -> tuple:
    """Mean and standard deviation of all weights of a set (the paper's Table S1)."""
    T = _set("thetas", thetas).astype(np.float64)
    return float(T.mean()), float(T.std())


def pairwise_distances(A, B=None) -> np.ndarray:
    """Euclidean distances (len(A), len(B)); B defaults to A."""
    A = _set("A", A)
    B = A if B is None else _set("B", B)
    return np.sqrt(sq_distances(A, B))


def separation(Ea, Eb, axis: int = 0) -> dict:
    """How well two sets separate along one embedding axis (default PC1).

    Returns ``auc`` (the probability that a random member of one set lies beyond a
    random member of the other, folded to >= 0.5: 1 is perfect separation, 0.5 none)
    and ``fisher`` ((mu_a - mu_b)^2 / (var_a + var_b)).
    """
    a = np.asarray(Ea)[:, axis].astype(np.float64)
    b = np.asarray(Eb)[:, axis].astype(np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("Ea, Eb: need at least one point in each set")
    greater = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    auc = max(greater, 1.0 - greater)
    var = a.var() + b.var()
    fisher = float((a.mean() - b.mean()) ** 2 / var) if var > 0 else float("inf")
    return dict(auc=float(auc), fisher=fisher)


# RBF bandwidths of the sweep, as gamma * D (1: the paper's 2 sigma^2 = D).
GAMMA_D = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def bandwidth_sweep(A, B, gamma_d=GAMMA_D) -> list:
    """PC1 separation of two sets by RBF kernel PCA at each bandwidth gamma = g / D:
    a list of dicts (gamma_d, auc, fisher)."""
    from .kpca import KernelPCA

    A, B = _set("A", A), _set("B", B)
    if A.shape[1] != B.shape[1]:
        raise ValueError("A, B: vectors of different lengths")
    X = np.concatenate([A, B]).astype(np.float64)
    out = []
    for g in gamma_d:
        E = KernelPCA(2, kernel="rbf", gamma=float(g) / X.shape[1]).fit_transform(X)
        out.append(dict(gamma_d=float(g), **separation(E[: len(A)], E[len(A):])))
    return out


def set_geometry(thetas) -> dict:
    """Scale of a set of solutions: the median norm, the median and quartiles of the
    mutual distances, and the RMS mutual distance per parameter (d / sqrt(D), the
    scale the RBF kernel's gamma * D compares with)."""
    T = _set("thetas", thetas).astype(np.float64)
    norms = np.linalg.norm(T, axis=1)
    iu = np.triu_indices(len(T), 1)
    d = pairwise_distances(T)[iu] if len(T) > 1 else np.zeros(1)
    return dict(norm_median=float(np.median(norms)), dist_median=float(np.median(d)),
                dist_q25=float(np.percentile(d, 25)), dist_q75=float(np.percentile(d, 75)),
                dist_rms_per_param=float(np.sqrt(np.mean(d ** 2) / T.shape[1])))
