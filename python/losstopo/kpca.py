"""Kernel PCA of parameter vectors (scikit-learn conventions, NumPy/SciPy only)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.linalg import eigh

from ._checks import check_int

KERNELS = ("rbf", "linear", "poly", "sigmoid")


def sq_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(A), len(B)), computed in float64."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d, 0.0)


class KernelPCA:
    """Kernel principal component analysis.

    Parameters
    ----------
    n_components : int
    kernel : "rbf" (default), "linear" (ordinary PCA), "poly" or "sigmoid"
    gamma : float, optional
        RBF: k(x, x') = exp(-gamma |x - x'|^2). The default is the paper's
        2 sigma^2 = D, i.e. gamma = 1 / D. For poly/sigmoid the default is 1 / D too.
    degree, coef0 : poly (gamma x.x' + coef0)^degree; sigmoid tanh(gamma x.x' + coef0).

    Fitted attributes: ``eigenvalues_`` (n_components,), ``eigenvectors_``
    (n_samples, n_components) of the centered kernel matrix, ``X_fit_``, ``gamma_``.
    Each eigenvector's sign is fixed so its largest-magnitude entry is positive.
    """

    def __init__(self, n_components: int = 2, kernel: str = "rbf", gamma: Optional[float] = None,
                 degree: int = 3, coef0: float = 1.0):
        self.n_components = n_components
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0

    def _kernel(self, A, B):
        if self.kernel == "rbf":
            return np.exp(-self.gamma_ * sq_distances(A, B))
        dot = np.asarray(A, dtype=np.float64) @ np.asarray(B, dtype=np.float64).T
        if self.kernel == "linear":
            return dot
        if self.kernel == "poly":
            return (self.gamma_ * dot + self.coef0) ** self.degree
        return np.tanh(self.gamma_ * dot + self.coef0)

    def fit(self, X, y=None) -> "KernelPCA":
        """X: (n_samples, D). Returns self."""
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {KERNELS}, got {self.kernel!r}")
        X = _real_matrix(X)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"X: expected shape (n >= 2, D >= 1), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X: contains NaN or Inf")
        n = X.shape[0]
        k = self.n_components
        k = check_int("n_components", k, 1, n)
        if self.gamma is not None and not (np.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma: must be positive, got {self.gamma!r}")
        self.gamma_ = 1.0 / X.shape[1] if self.gamma is None else float(self.gamma)
        self.X_fit_ = np.array(X, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            K = self._kernel(self.X_fit_, self.X_fit_)
        if not np.isfinite(K).all():  # squared distances or products beyond float64
            raise ValueError("X: values too large for the kernel (its entries overflow "
                             f"float64; largest |X| is {np.abs(X).max():.3g}); rescale X")
        self._col_means = K.mean(axis=0)
        self._all_mean = K.mean()
        Kc = K - self._col_means[None, :] - self._col_means[:, None] + self._all_mean
        vals, vecs = eigh(Kc, subset_by_index=(n - k, n - 1))
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(k)])
        vecs = vecs * np.where(signs == 0, 1.0, signs)
        self.eigenvalues_ = vals
        self.eigenvectors_ = vecs
        return self

    def transform(self, X) -> np.ndarray:
        """Projects new points (m, D) -> (m, n_components) (out-of-sample)."""
        if not hasattr(self, "X_fit_"):
            raise RuntimeError("KernelPCA: call fit first")
        X = _real_matrix(X)
        if X.ndim != 2 or X.shape[1] != self.X_fit_.shape[1]:
            raise ValueError(f"X: expected shape (m, {self.X_fit_.shape[1]}), got {X.shape}")
        K = self._kernel(X, self.X_fit_)
        Kc = K - K.mean(axis=1, keepdims=True) - self._col_means[None, :] + self._all_mean
        pos = np.maximum(self.eigenvalues_, 1e-300)
        return Kc @ (self.eigenvectors_ / np.sqrt(pos))

    def fit_transform(self, X, y=None) -> np.ndarray:
        self.fit(X)
        return self.eigenvectors_ * np.sqrt(np.maximum(self.eigenvalues_, 0.0))

    @property
    def explained_ratio_(self) -> np.ndarray:
        """Share of the centered kernel's trace carried by each component."""
        K = self._kernel(self.X_fit_, self.X_fit_)
        Kc = K - self._col_means[None, :] - self._col_means[:, None] + self._all_mean
        return self.eigenvalues_ / np.trace(Kc)


def _real_matrix(X) -> np.ndarray:
    """X as an array of real numbers (complex, boolean, object or string input refused)."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"X: expected real numbers, got dtype {X.dtype}")
    return X
