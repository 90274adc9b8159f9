"""Curvature of a landscape at a solution, from exact Hessian-vector products asked of
the engine in blocks: the top eigenvalues and eigenvectors (Lanczos), the trace
(Hutchinson's estimator with Rademacher probes) and the spectral density (stochastic
Lanczos quadrature, Ghorbani et al. 2019).

Any landscape with a ``hessian_vector(theta, V)`` method works: theta (D,) or (P, D)
(one point for all directions, or one per direction), V (P, D) -> H V (P, D). The
native ``Landscape`` computes them exactly by the R-operator. Every random draw comes
from ``seed``; the number of probes sets the error, which is returned with the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._checks import check_int, check_point
from .progress import Progress


def _products(landscape, samples=None):
    """f(theta (D,) or (P, D), V (P, D) float64) -> H V (P, D) float64."""
    hv = getattr(landscape, "hessian_vector", None)
    if hv is None:
        raise TypeError(f"landscape: {type(landscape).__name__} offers no hessian_vector(theta, "
                        "V); curvature needs exact Hessian-vector products (losstopo.Landscape "
                        "on the CPU)")
    dtype = np.dtype(getattr(landscape, "dtype", np.float64))

    def f(theta, V):
        out = hv(np.asarray(theta, dtype=dtype), np.asarray(V, dtype=dtype), samples=samples)
        out = np.asarray(out, dtype=np.float64)
        if not np.isfinite(out).all():
            raise FloatingPointError("hessian_vector: non-finite products (the loss is not "
                                     "finite near theta?)")
        return out

    return f


def _rademacher(rng, shape) -> np.ndarray:
    return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0


# ------------------------------------------------------------------ eigenvalues
def top_eigenvalues(landscape, theta, k: int = 1, tol: float = 1e-4, seed: int = 0,
                    samples=None, method: str = "lanczos", max_steps: int = 300):
    """The k largest eigenvalues of the Hessian at theta and their unit eigenvectors.
    Returns (values (k,) descending, vectors (k, D), products used); fewer than k
    when the start vector's Krylov space is exhausted first (Lanczos).

    method "lanczos": Lanczos with full reorthogonalization, one product per step,
    stopped when every one of the k Ritz pairs has a residual below ``tol`` times
    its value (so its value is within that relative distance of an eigenvalue);
    "arpack": ARPACK's implicitly restarted Lanczos (``eigsh``, tol its own relative
    accuracy), for reference."""
    f = _products(landscape, samples)
    t = check_point(landscape, theta)
    D = t.size
    k = check_int("k", k, maximum=max(D - 1, 1))
    if method not in ("lanczos", "arpack"):
        raise ValueError(f"method: expected 'lanczos' or 'arpack', got {method!r}")
    if not tol > 0:
        raise ValueError(f"tol: must be positive, got {tol}")
    v0 = np.random.default_rng(seed).standard_normal(D)
    if method == "lanczos":
        max_steps = check_int("max_steps", max_steps, minimum=k + 1)
        alpha, beta, done, basis = _lanczos(lambda rows, Q: f(t, Q), v0[None], max_steps, tol,
                                            k=k, keep_basis=True)
        m = int(done[0])
        T = np.diag(alpha[0, :m]) + np.diag(beta[0, : m - 1], 1) + np.diag(beta[0, : m - 1], -1)
        ev, U = np.linalg.eigh(T)
        top = np.argsort(ev)[::-1][:k]
        vecs = U[:, top].T @ basis[0, :m]
        return ev[top], vecs / np.linalg.norm(vecs, axis=1, keepdims=True), m

    from scipy.sparse.linalg import LinearOperator, eigsh

    count = [0]

    def matmat(V):
        V = np.asarray(V, dtype=np.float64).reshape(D, -1)
        count[0] += V.shape[1]
        return f(t, V.T).T

    op = LinearOperator((D, D), matvec=lambda v: matmat(v)[:, 0], matmat=matmat,
                        dtype=np.float64)
    vals, vecs = eigsh(op, k=k, which="LA", tol=tol, v0=v0)
    order = np.argsort(vals)[::-1]
    return vals[order], vecs[:, order].T, count[0]


def _lanczos(matvec, q0: np.ndarray, steps: int, tol: Optional[float] = None, k: int = 1,
             keep_basis: bool = False):
    """Lanczos with full reorthogonalization, run for P start vectors at once.

    matvec(rows, Q (len(rows), D)) -> the products for the start vectors ``rows``.
    Returns alpha (P, steps), beta (P, steps - 1), the steps each run took (and with
    keep_basis, the basis (P, steps, D)). With tol, a run stops once each of its k
    largest Ritz values has a residual bound |beta_m u_m| below tol times it."""
    P, D = q0.shape
    steps = min(steps, D)
    basis = np.zeros((P, steps, D))
    alpha = np.zeros((P, steps))
    beta = np.zeros((P, steps))
    done = np.zeros(P, dtype=np.int64)  # steps taken by finished runs
    basis[:, 0] = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    active = np.arange(P)
    scale = np.zeros(P)  # the largest |alpha|, |beta| of each run so far
    for j in range(steps):
        if active.size == 0:
            break
        # all runs active: views, not copies, of the (P, steps, D) basis
        sel = slice(None) if active.size == P else active
        w = matvec(active, basis[sel, j])
        a = np.einsum("pd,pd->p", basis[sel, j], w)
        alpha[active, j] = a
        w -= a[:, None] * basis[sel, j]
        if j > 0:
            w -= beta[active, j - 1][:, None] * basis[sel, j - 1]
        for _ in range(2):  # full reorthogonalization, twice is enough
            Qa = basis[sel, : j + 1]
            w -= np.einsum("pkd,pk->pd", Qa, np.einsum("pkd,pd->pk", Qa, w))
        b = np.linalg.norm(w, axis=1)
        beta[active, j] = b
        scale[active] = np.maximum(scale[active], np.maximum(np.abs(a), b))
        keep = np.ones(active.size, dtype=bool)
        for i, p in enumerate(active):
            # an invariant subspace: the residual vanishes relative to the matrix's scale
            if j + 1 >= steps or b[i] <= 1e-12 * scale[p] or scale[p] == 0.0:
                keep[i] = False
            elif tol is not None and j + 1 >= k:
                T = np.diag(alpha[p, : j + 1]) + np.diag(beta[p, :j], 1) + np.diag(beta[p, :j], -1)
                ev, U = np.linalg.eigh(T)
                top = np.arange(j, j - k, -1)
                if np.all(np.abs(b[i] * U[-1, top]) <= tol * np.abs(ev[top])):
                    keep[i] = False
            if not keep[i]:
                done[p] = j + 1
            else:
                basis[p, j + 1] = w[i] / b[i]
        active = active[keep]
    done[done == 0] = steps
    out = (alpha, beta[:, : steps - 1], done)
    return out + (basis,) if keep_basis else out


def _ritz(alpha: np.ndarray, beta: np.ndarray, m: int):
    """Ritz values and the squared first components of their vectors (quadrature
    weights) of the m x m tridiagonal matrix."""
    T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    ev, U = np.linalg.eigh(T)
    return ev, U[0] ** 2


def sharpness(landscape, thetas, tol: float = 1e-3, max_steps: int = 100, seed: int = 0,
              samples=None, progress: bool = False) -> np.ndarray:
    """The largest Hessian eigenvalue at each of P solutions (P, D), by Lanczos runs for
    all of them at once (each step one batched call: one direction per solution),
    each stopped when its top Ritz value is converged to ``tol`` (relative)."""
    f = _products(landscape, samples)
    th = np.asarray(thetas, dtype=np.float64)
    if th.ndim == 1:
        th = th[None]
    D = int(landscape.num_params)
    if th.ndim != 2 or th.shape[1] != D or th.shape[0] == 0:
        raise ValueError(f"thetas: expected shape (P, {D}), got {np.shape(thetas)}")
    if not np.isfinite(th).all():
        raise ValueError("thetas: contains NaN or Inf")
    max_steps = check_int("max_steps", max_steps, minimum=2)
    bar = Progress(max_steps, "sharpness (Lanczos steps)", enabled=progress)

    def matvec(rows, Q):
        bar.update(1)
        return f(th[rows], Q)

    q0 = np.random.default_rng(seed).standard_normal(th.shape)
    alpha, beta, done = _lanczos(matvec, q0, max_steps, tol)
    bar.set(bar.total)
    bar.close()
    return np.array([_ritz(alpha[p], beta[p], int(done[p]))[0][-1] for p in range(len(th))])


# ------------------------------------------------------------------------ trace
def hessian_trace(landscape, theta, probes: int = 64, batch: int = 16, seed: int = 0,
                  samples=None):
    """Hutchinson's estimate of the Hessian's trace, mean of v^T H v over Rademacher
    probes v, computed ``batch`` probes per engine call. Returns (trace, standard
    error of the mean)."""
    f = _products(landscape, samples)
    t = check_point(landscape, theta)
    probes = check_int("probes", probes, minimum=2)
    batch = check_int("batch", batch)
    rng = np.random.default_rng(seed)
    est = []
    for start in range(0, probes, batch):
        V = _rademacher(rng, (min(batch, probes - start), t.size))
        est.append(np.einsum("pd,pd->p", V, f(t, V)))
    est = np.concatenate(est)
    return float(est.mean()), float(est.std(ddof=1) / np.sqrt(est.size))


# -------------------------------------------------------------- spectral density
@dataclass
class SpectralDensity:
    """Stochastic Lanczos quadrature: per probe, Ritz values (nodes) and weights (each
    probe's weights sum to 1); ``density`` is their Gaussian-broadened average on
    ``grid`` (it integrates to 1)."""

    nodes: np.ndarray    # (probes, steps)
    weights: np.ndarray  # (probes, steps)
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    num_params: int

    @property
    def trace(self) -> float:
        """The trace the quadrature implies: D times the mean of sum(weights * nodes)."""
        return float(self.num_params * np.mean(np.sum(self.weights * self.nodes, axis=1)))


def spectral_density(landscape, theta, probes: int = 4, steps: int = 64, seed: int = 0,
                     grid: int = 400, sigma: Optional[float] = None,
                     samples=None) -> SpectralDensity:
    """The Hessian's eigenvalue density at theta by stochastic Lanczos quadrature:
    ``probes`` Lanczos runs of ``steps`` steps from Rademacher vectors, all probes in
    one engine call per step. ``sigma`` (default: 1/200 of the Ritz values' range)
    broadens each node into a Gaussian."""
    f = _products(landscape, samples)
    t = check_point(landscape, theta)
    probes = check_int("probes", probes)
    steps = check_int("steps", steps, minimum=2)
    grid = check_int("grid", grid, minimum=2)
    q0 = _rademacher(np.random.default_rng(seed), (probes, t.size))
    alpha, beta, done = _lanczos(lambda rows, Q: f(t, Q), q0, steps)
    m = int(done.min())
    nodes = np.zeros((probes, m))
    weights = np.zeros((probes, m))
    for p in range(probes):
        nodes[p], weights[p] = _ritz(alpha[p], beta[p], m)
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(hi - lo, 1e-12) / 200.0
    if not sigma > 0:
        raise ValueError(f"sigma: must be positive, got {sigma}")
    x = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid)
    g = np.exp(-0.5 * ((x[:, None] - nodes.reshape(-1)[None]) / sigma) ** 2)
    dens = (g * weights.reshape(-1)[None]).sum(axis=1) / (probes * sigma * np.sqrt(2 * np.pi))
    return SpectralDensity(nodes, weights, x, dens, float(sigma), t.size)


# ---------------------------------------------------------------------- summary
@dataclass
class HessianSummary:
    eigenvalues: np.ndarray      # (k,) descending
    eigenvectors: np.ndarray     # (k, D)
    trace: float
    trace_stderr: float
    trace_probes: int
    density: Optional[SpectralDensity] = None
    products: dict = field(default_factory=dict)  # Hessian-vector products per measure


def hessian(landscape, theta, top_k: int = 1, trace_probes: int = 64,
            density_probes: int = 0, density_steps: int = 64, tol: float = 1e-4,
            seed: int = 0, samples=None) -> HessianSummary:
    """Top eigenvalues and eigenvectors, Hutchinson trace with its standard error and,
    with ``density_probes`` > 0, the spectral density of the Hessian at theta.
    Each count is checked here, so an error names the argument the caller gave."""
    top_k = check_int("top_k", top_k, maximum=max(int(landscape.num_params) - 1, 1))
    trace_probes = check_int("trace_probes", trace_probes, minimum=2)
    density_probes = check_int("density_probes", density_probes, minimum=0)
    if density_probes:
        density_steps = check_int("density_steps", density_steps, minimum=2)
    vals, vecs, n_eig = top_eigenvalues(landscape, theta, k=top_k, tol=tol, seed=seed,
                                        samples=samples)
    tr, se = hessian_trace(landscape, theta, probes=trace_probes, seed=seed, samples=samples)
    dens = None
    products = {"eigenvalues": n_eig, "trace": int(trace_probes)}
    if density_probes:
        dens = spectral_density(landscape, theta, probes=density_probes, steps=density_steps,
                                seed=seed, samples=samples)
        products["density"] = int(density_probes * dens.nodes.shape[1])
    return HessianSummary(vals, vecs, tr, se, int(trace_probes), dens, products)
