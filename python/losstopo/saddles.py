"""Certified barriers: a path refined to the minimum-energy path (climbing-image
nudged elastic band), its highest point driven to a first-order saddle (hybrid
eigenvector-following on exact Hessian-vector products), and the proof that the
saddle joins the two endpoints (descents from it along both signs of its negative
eigenvector, each ending in an endpoint's basin).

A barrier with status ``certified`` is the energy of an index-1 saddle whose two
descent branches reach the two endpoints' basins: a path through it exists whose
highest point is that saddle, and no small deformation of the path lowers it. It is
the lowest barrier through that saddle's valley, not a proof that no other valley
is lower. ``barrier-free``: the path never rises above the higher endpoint by more
than the tolerance, so there is no saddle to find. ``bound only``: the number is the
maximum of a path (an upper bound of the true barrier), with the reason the proof
failed.

Works on any landscape of the batched form ``f(X (P, D)) -> (E (P,), G (P, D))``:
a :class:`~losstopo.Landscape` (native or CUDA), a ``TorchLandscape`` or a plain
callable. Exact Hessian-vector products are used where the landscape offers
``hessian_vector``; otherwise central differences of the gradient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ._checks import check_int
from .progress import Progress

STATUSES = ("certified", "barrier-free", "bound only")
ENDPOINTS = ("minima", "polish", "bound")
NEB_METHODS = ("lbfgs", "fire")
# certify's default barrier_tol, as a fraction of the given path's rise above its
# higher endpoint
BARRIER_TOL = 1e-5
# Activations whose second derivative is zero almost everywhere: the Hessian of the
# R-operator describes the loss only inside one activation pattern.
PIECEWISE_LINEAR = ("relu", "identity")


# ---------------------------------------------------------------------- results
@dataclass
class Saddle:
    """A stationary point found by the saddle search, with its curvature."""

    theta: np.ndarray
    loss: float
    grad_norm: float
    eigenvalues: np.ndarray   # the lowest Ritz values, ascending
    top_eigenvalue: float     # the largest (the scale eig_tol is relative to)
    index: int                # eigenvalues below -eig_tol * top_eigenvalue
    connects: tuple = ()      # what each descent branch (+v, -v) reached
    second_order: str = "checked"  # or "not meaningful" (see Certificate.reason)


@dataclass
class Minimum:
    """An intermediate minimum reached by a descent branch from a saddle."""

    theta: np.ndarray
    loss: float
    grad_norm: float


@dataclass
class Certificate:
    """What a path's barrier is, with its proof (see the module's docstring).

    ``barrier`` is absolute (the paper's H): the highest saddle's loss when
    certified, the highest point of the refined chain of images (the straight segments
    between them) when barrier-free, the refined path's
    maximum when a bound. ``barrier_rel`` subtracts the higher endpoint.
    ``saddles`` and ``minima`` run from a to b; ``history`` is the path's maximum
    after every refinement iteration; ``tolerances`` the criteria used;
    ``evaluations`` counts loss+gradient points and Hessian-vector products.
    """

    status: str
    barrier: float
    reason: str
    saddles: list = field(default_factory=list)
    minima: list = field(default_factory=list)
    endpoint_losses: tuple = ()
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tolerances: dict = field(default_factory=dict)
    evaluations: dict = field(default_factory=dict)
    pieces: list = field(default_factory=list)  # (status, barrier, reason) per piece

    @property
    def barrier_rel(self) -> float:
        return float(self.barrier - max(self.endpoint_losses))

    @property
    def certified(self) -> bool:
        return self.status == "certified"

    def summary(self) -> dict:
        """Plain numbers (no vectors), for files and reports."""
        top = max(self.saddles, key=lambda q: q.loss) if self.saddles else None
        return dict(status=self.status, barrier=float(self.barrier), reason=self.reason,
                    saddles=len(self.saddles), minima=len(self.minima),
                    saddle_loss=np.nan if top is None else float(top.loss),
                    saddle_grad_norm=np.nan if top is None else float(top.grad_norm),
                    saddle_eigenvalue=np.nan if top is None else float(top.eigenvalues[0]),
                    saddle_eigenvalue2=(np.nan if top is None or len(top.eigenvalues) < 2
                                        else float(top.eigenvalues[1])),
                    saddle_top_eigenvalue=np.nan if top is None else float(top.top_eigenvalue),
                    iterations=int(len(self.history)),
                    gradients=int(self.evaluations.get("gradients", 0)),
                    hessian_vector=int(self.evaluations.get("hessian_vector", 0)))

    def __repr__(self) -> str:
        r = f", reason={self.reason!r}" if self.reason else ""
        return (f"Certificate(status={self.status!r}, barrier={self.barrier:.6g}, "
                f"saddles={len(self.saddles)}, minima={len(self.minima)}{r})")


# ----------------------------------------------------------------------- oracle
class _Oracle:
    """Float64 loss, gradients and Hessian-vector products of a landscape, counted."""

    def __init__(self, landscape):
        from .paths import landscape_kind

        self.landscape = landscape
        self.dtype, self.D, _ = landscape_kind(landscape)
        if self.D is None:
            self.D = getattr(landscape, "num_params", None)
        self.exact_hv = callable(getattr(landscape, "hessian_vector", None))
        self.gradients = 0
        self.products = 0
        # what each phase of a certification spent: {name: [gradients, products]}
        self.phases = {}
        self._phase, self._at = None, (0, 0)
        net = getattr(landscape, "net", None)
        acts = tuple(getattr(net, "activations", ()) or ())
        self.piecewise_linear = bool(acts) and any(a in PIECEWISE_LINEAR for a in acts)
        # finite-difference step of the gradient's differences
        self.fd_eps = float(np.finfo(self.dtype).eps ** (1 / 3))

    def enter(self, phase) -> None:
        """Charges what was counted since the last call to the phase then running;
        ``phase`` (a name, or None) runs next."""
        if self._phase is not None:
            g, p = self.phases.get(self._phase, (0, 0))
            self.phases[self._phase] = [g + self.gradients - self._at[0],
                                        p + self.products - self._at[1]]
        self._phase, self._at = phase, (self.gradients, self.products)

    def evaluations(self) -> dict:
        """The counts so far, in all and per phase (the running phase closed)."""
        self.enter(None)
        return dict(gradients=self.gradients, hessian_vector=self.products,
                    phases={k: dict(gradients=g, hessian_vector=p)
                            for k, (g, p) in self.phases.items()})

    def eg(self, X):
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        E, G = self.landscape(np.ascontiguousarray(X, dtype=self.dtype))
        self.gradients += len(X)
        E = np.asarray(E, dtype=np.float64).reshape(len(X))
        G = np.asarray(G, dtype=np.float64).reshape(len(X), -1)
        return E, G

    def energy(self, X):
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        loss = getattr(self.landscape, "loss", None)
        if callable(loss):
            self.gradients += len(X)
            return np.asarray(loss(np.ascontiguousarray(X, dtype=self.dtype)),
                              dtype=np.float64).reshape(len(X))
        return self.eg(X)[0]

    def hv(self, x, V):
        """H(x) V for V (k, D), float64."""
        V = np.atleast_2d(V)
        self.products += len(V)
        if self.exact_hv:
            out = self.landscape.hessian_vector(np.asarray(x, dtype=self.dtype),
                                                np.ascontiguousarray(V, dtype=self.dtype))
            out = np.asarray(out, dtype=np.float64).reshape(V.shape)
        else:
            h = self.fd_eps * max(1.0, float(np.linalg.norm(x)) / np.sqrt(x.size))
            _, G = self.eg(np.concatenate([x + h * V, x - h * V]))
            out = (G[: len(V)] - G[len(V):]) / (2 * h)
        if not np.isfinite(out).all():
            raise FloatingPointError("hessian_vector: non-finite products")
        return out


# ------------------------------------------------------------------- curvature
def _lanczos_ends(hv, D: int, v0, steps: int, tol: float, low: int = 2, seed: int = 0):
    """Lanczos (full reorthogonalization) from v0 for the ``low`` lowest and the top
    eigenpairs of the symmetric operator ``hv``. Stops when the lowest ``low`` Ritz
    pairs and the top one have residuals below ``tol`` times the largest |Ritz value|.
    Returns (values ascending (low,), vectors (low, D), residuals (low,), top value,
    converged)."""
    rng = np.random.default_rng(seed)
    q = np.asarray(v0, dtype=np.float64).copy()
    if not np.any(q):
        q = rng.standard_normal(D)
    # a little of a random vector: a start exactly on an eigenvector finds no other
    q = q / np.linalg.norm(q) + 1e-3 * rng.standard_normal(D) / np.sqrt(D)
    steps = min(steps, D)
    Q = np.zeros((steps, D))
    Q[0] = q / np.linalg.norm(q)
    alpha, beta = [], []
    ok = False
    for j in range(steps):
        w = hv(Q[j][None])[0]
        a = float(Q[j] @ w)
        alpha.append(a)
        w -= a * Q[j]
        if j:
            w -= beta[-1] * Q[j - 1]
        for _ in range(2):
            w -= Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        m = j + 1
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        ev, U = np.linalg.eigh(T)
        scale = max(np.max(np.abs(ev)), 1e-300)
        res = np.abs(b * U[-1])
        k = min(low, m)
        want = np.r_[np.arange(k), m - 1]
        if b <= 1e-12 * scale or m == D:  # an invariant subspace: all exact
            ok = True
            res = np.zeros_like(res)
            break
        if m >= low + 1 and np.all(res[want] <= tol * scale):
            ok = True
            break
        beta.append(b)
        if j + 1 < steps:
            Q[j + 1] = w / b
    k = min(low, m)
    vecs = U[:, :k].T @ Q[:m]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return ev[:k], vecs, res[:k], float(ev[-1]), ok


# -------------------------------------------------------------------------- NEB
@dataclass
class NEBResult:
    """A refined chain of images (M, D) with their energies, the climbing image's
    index, the force norms reached and the barrier after every iteration."""

    images: np.ndarray
    energies: np.ndarray
    climber: int
    force: float          # the largest NEB force norm over the moving images
    climb_force: float    # the climbing image's force norm
    history: np.ndarray   # the highest energy after every iteration
    converged: bool
    iterations: int
    low: bool = False     # stopped because no image rose above stop_rise


def _tangents(R, E):
    """Henkelman & Jonsson's (2000) improved tangents of the interior images."""
    tp = R[2:] - R[1:-1]
    tm = R[1:-1] - R[:-2]
    Ei, Ep, Em = E[1:-1], E[2:], E[:-2]
    up = (Ep > Ei) & (Ei > Em)
    down = (Ep < Ei) & (Ei < Em)
    dmax = np.maximum(np.abs(Ep - Ei), np.abs(Em - Ei))
    dmin = np.minimum(np.abs(Ep - Ei), np.abs(Em - Ei))
    wp = np.where(Ep > Em, dmax, dmin)
    wm = np.where(Ep > Em, dmin, dmax)
    tau = wp[:, None] * tp + wm[:, None] * tm
    tau = np.where(up[:, None], tp, np.where(down[:, None], tm, tau))
    n = np.linalg.norm(tau, axis=1, keepdims=True)
    bad = n[:, 0] == 0
    if bad.any():
        tau[bad] = (R[2:] - R[:-2])[bad]
        n = np.linalg.norm(tau, axis=1, keepdims=True)
    return tau / np.maximum(n, 1e-300)


def neb(landscape, images, ftol: float = 1e-3, max_iter: int = 500, climb: bool = True,
        spring: float = 1.0, max_step: Optional[float] = None, method: str = "lbfgs",
        memory: int = 20, stop_rise: Optional[float] = None, progress: bool = False,
        _oracle=None) -> NEBResult:
    """Climbing-image nudged elastic band (Henkelman, Uberuaga & Jonsson 2000) on a
    chain of images (M, D) whose first and last stay fixed: every iteration
    evaluates all moving images in one batched call and moves them by global L-BFGS
    on the band's force (``method="lbfgs"``, Sheppard, Terrell & Henkelman 2008;
    ``memory`` pairs) or by FIRE (``"fire"``, Bitzek et al. 2006), no image further
    than ``max_step`` (default a quarter of the image spacing) per iteration. Springs
    hold the images evenly spaced along the path; with ``climb`` the highest image
    climbs (its force along the tangent inverted) once the band has settled to 10x
    ``ftol``. Stops when every moving image's force norm is below ``ftol`` (absolute,
    in the landscape's gradient units), when no image rises more than ``stop_rise``
    above the higher endpoint (``low``: a path with no barrier is found, nothing
    more to refine), or after ``max_iter``. ``spring`` scales the spring constant
    (default: springs as stiff as the straight line's barrier over the path's
    length)."""
    R = np.array(images, dtype=np.float64)
    if R.ndim != 2 or len(R) < 3:
        raise ValueError(f"images: expected (M >= 3, D), got {np.shape(images)}")
    if not np.isfinite(R).all():
        raise ValueError("images: contains NaN or Inf")
    if not (np.isfinite(ftol) and ftol > 0):
        raise ValueError(f"ftol: must be a positive number, got {ftol!r}")
    if not (np.isfinite(spring) and spring > 0):
        raise ValueError(f"spring: must be a positive number, got {spring!r}")
    max_iter = check_int("max_iter", max_iter, minimum=0)
    if method not in NEB_METHODS:
        raise ValueError(f"method: expected one of {NEB_METHODS}, got {method!r}")
    memory = check_int("memory", memory, minimum=1)
    orc = _oracle or _Oracle(landscape)
    M = len(R)
    E = np.empty(M)
    E[[0, -1]] = orc.energy(R[[0, -1]])
    Ein, G = orc.eg(R[1:-1])
    E[1:-1] = Ein
    seg = np.linalg.norm(np.diff(R, axis=0), axis=1)
    L = max(float(seg.sum()), 1e-300)
    h = L / (M - 1)
    dE = max(float(E.max() - max(E[0], E[-1])), 1e-8 * max(1.0, abs(float(E.max()))))
    k = spring * dE / (L * h)
    step_cap = 0.25 * h if max_step is None else float(max_step)
    V = np.zeros((M - 2, R.shape[1]))
    dt = None
    a_fire, n_pos = 0.1, 0
    history = []
    bar = Progress(max_iter, "NEB", enabled=progress)
    climbing = low = False
    S, Y, prev = [], [], None
    c = int(np.argmax(E[1:-1])) + 1
    fmax = cf = np.inf
    it = 0
    try:
        for it in range(max_iter + 1):
            tau = _tangents(R, E)
            gpar = np.einsum("pd,pd->p", G, tau)
            F = -(G - gpar[:, None] * tau)  # the perpendicular true force
            d = np.linalg.norm(np.diff(R, axis=0), axis=1)
            F += (k * (d[1:] - d[:-1]))[:, None] * tau
            c = int(np.argmax(E[1:-1])) + 1
            if climbing:
                F[c - 1] = -G[c - 1] + 2 * gpar[c - 1] * tau[c - 1]
            norms = np.linalg.norm(F, axis=1)
            fmax = float(norms.max())
            cf = float(norms[c - 1])
            history.append(float(E.max()))
            if stop_rise is not None and E.max() - max(E[0], E[-1]) <= stop_rise:
                low = True
                break
            if climb and not climbing and fmax < 10 * ftol:
                climbing = True
                S, Y, prev = [], [], None  # the force changed: its history no longer holds
                continue
            if fmax < ftol and (climbing or not climb):
                break
            if it == max_iter:
                break
            if method == "lbfgs":
                # global L-BFGS on the band's force (Sheppard, Terrell & Henkelman
                # 2008): the images' force as one vector, the step scaled as a whole
                # so that no image moves more than step_cap
                f = F.ravel()
                if prev is not None:
                    sv, yv = R[1:-1].ravel() - prev[0], prev[1] - f
                    if sv @ yv > 0:
                        _push(S, Y, sv, yv, m=memory)
                    else:
                        S, Y = [], []
                d = _two_loop(f, S, Y, step_cap)
                if d @ f <= 0:  # not along the force: afresh
                    S, Y = [], []
                    d = f * (step_cap / max(float(np.linalg.norm(f)), 1e-300))
                step = d.reshape(F.shape)
                sn = float(np.linalg.norm(step, axis=1).max())
                step *= min(1.0, step_cap / max(sn, 1e-300))
                prev = (R[1:-1].ravel().copy(), f.copy())
                R[1:-1] += step
                Ein, G = orc.eg(R[1:-1])
                if not np.isfinite(Ein).all():
                    raise FloatingPointError("neb: the energy is not finite at an image (a "
                                             "step too long? lower max_step)")
                E[1:-1] = Ein
                bar.update(1, postfix=f"max E {E.max():.6g} |F| {fmax:.2e}")
                continue
            # FIRE
            if dt is None:
                dt = np.sqrt(0.1 * step_cap / max(fmax, 1e-300))
                dt_max = 10 * dt
            P = float(np.sum(F * V))
            if P > 0:
                fn = np.linalg.norm(F)
                V = (1 - a_fire) * V + a_fire * np.linalg.norm(V) * F / max(fn, 1e-300)
                n_pos += 1
                if n_pos > 5:
                    dt = min(dt * 1.1, dt_max)
                    a_fire *= 0.99
            else:
                V[:] = 0.0
                dt *= 0.5
                a_fire, n_pos = 0.1, 0
            V += dt * F
            step = dt * V
            sn = np.linalg.norm(step, axis=1, keepdims=True)
            step *= np.minimum(1.0, step_cap / np.maximum(sn, 1e-300))
            R[1:-1] += step
            Ein, G = orc.eg(R[1:-1])
            if not np.isfinite(Ein).all():
                raise FloatingPointError("neb: the energy is not finite at an image (a step "
                                         "too long? lower max_step)")
            E[1:-1] = Ein
            bar.update(1, postfix=f"max E {E.max():.6g} |F| {fmax:.2e}")
    finally:
        bar.close()
    converged = fmax < ftol and (climbing or not climb)
    return NEBResult(R, E.copy(), c, fmax, cf, np.array(history), bool(converged), it, low)


# ---------------------------------------------------------------- saddle search
@dataclass
class _Search:
    x: np.ndarray
    loss: float
    grad: np.ndarray
    v: np.ndarray
    lam: float
    iterations: int
    converged: bool
    reason: str


def _two_loop(g, S, Y, scale):
    """The L-BFGS direction H g from the pairs (S, Y); ``scale`` the first step's
    length when there are none."""
    q = g.copy()
    al = []
    for s, y in zip(reversed(S), reversed(Y)):
        r = 1.0 / (y @ s)
        a = r * (s @ q)
        al.append((a, r, s, y))
        q -= a * y
    if S:
        q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    else:
        q *= scale / max(np.linalg.norm(q), 1e-300)
    for a, r, s, y in reversed(al):
        q += s * (a - r * (y @ q))
    return q


def _push(S, Y, s, y, m: int = 10) -> None:
    if s @ y > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
        S.append(s)
        Y.append(y)
        if len(S) > m:
            S.pop(0)
            Y.pop(0)


def _steihaug(hv, g, v, radius: float, iters: int, rtol: float):
    """Truncated conjugate gradients (Steihaug 1983) on (P H P) s = -P g in the
    complement P of the unit vector v, within ``radius``: stops on the relative
    residual ``rtol``, at the boundary, or along a direction of non-positive
    curvature (taken to the boundary). Returns (s, products used)."""
    def proj(u):
        return u - (u @ v) * v

    def to_boundary(s, d):
        a, b, c = d @ d, 2 * (s @ d), s @ s - radius ** 2
        return s + (-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) * d

    r = -proj(g)
    s = np.zeros_like(g)
    d = r.copy()
    rr = float(r @ r)
    r0 = np.sqrt(rr)
    if r0 == 0:
        return s, 0
    for k in range(iters):
        Hd = proj(hv(d[None])[0])
        dHd = float(d @ Hd)
        if dHd <= 0:
            return to_boundary(s, d), k + 1
        alpha = rr / dHd
        if np.linalg.norm(s + alpha * d) >= radius:
            return to_boundary(s, d), k + 1
        s = s + alpha * d
        r = r - alpha * Hd
        rn = float(r @ r)
        if np.sqrt(rn) <= rtol * r0:
            return s, k + 1
        d = r + (rn / rr) * d
        rr = rn
    return s, iters


def saddle_search(landscape, x0, direction=None, gtol: float = 1e-5,
                  max_iter: int = 200, max_step: Optional[float] = None,
                  lanczos_steps: int = 30, cg_iters: int = 50, seed: int = 0,
                  _oracle=None) -> _Search:
    """Hybrid eigenvector-following (after Munro & Wales 1999) as a trust-region
    Newton method from x0. Each iteration finds the lowest Hessian eigenpair (v, lam)
    by Lanczos warm-started from the last one; the step is Newton's along v where
    lam < 0 (uphill to the trust radius while the curvature is still positive) plus
    a truncated Newton step (Steihaug's conjugate gradients, ``cg_iters`` products
    at most) in the complement of v, where the Hessian is positive near an index-1
    saddle. A step is taken where it lowers the gradient norm, or where the
    quadratic model predicts the energy's change (ratio within 0.5..2); the trust
    radius grows where the model holds and shrinks where a step is refused. Ends
    where the gradient norm is below ``gtol`` (absolute). ``max_step`` is the first
    trust radius (default a tenth of the RMS parameter); it grows to 10x at most."""
    orc = _oracle or _Oracle(landscape)
    x = np.array(x0, dtype=np.float64)
    D = x.size
    v = (np.random.default_rng(seed).standard_normal(D) if direction is None
         else np.array(direction, dtype=np.float64))
    v /= np.linalg.norm(v)
    trust = (0.1 * max(1.0, np.linalg.norm(x) / np.sqrt(D)) if max_step is None
             else float(max_step))
    cap = 10 * trust
    E, G = orc.eg(x)
    E, g = float(E[0]), G[0]
    lam = np.nan
    refused = 0
    for it in range(max_iter + 1):
        gn = float(np.linalg.norm(g))
        if gn < gtol:
            return _Search(x, E, g, v, lam, it, True, "")
        if it == max_iter or refused > 30:
            break

        def hv(Q, x=x):
            return orc.hv(x, Q)

        vals, vecs, _, _, _ = _lanczos_ends(hv, D, v, lanczos_steps, 1e-3, low=1,
                                            seed=seed + it)
        lam, vn = float(vals[0]), vecs[0]
        v = vn if vn @ v >= 0 else -vn
        gv = float(g @ v)
        sv = -gv / lam if lam < 0 else np.sign(gv if gv else 1.0) * trust
        sv = float(np.clip(sv, -trust, trust))
        sp, _ = _steihaug(hv, g, v, trust, cg_iters, min(0.5, np.sqrt(gn)))
        step = sv * v + sp
        Hs = hv(step[None])[0]
        pred = float(g @ step + 0.5 * step @ Hs)
        En, Gn = orc.eg(x + step)
        if not np.isfinite(En[0]) or not np.isfinite(Gn).all():
            trust *= 0.25
            refused += 1
            continue
        gnn = float(np.linalg.norm(Gn[0]))
        rho = float((En[0] - E) / pred) if pred != 0 else 1.0
        if gnn < gn or (0.5 < rho < 2.0 and gnn < 2 * gn):
            x, E, g = x + step, float(En[0]), Gn[0]
            if 0.75 < rho < 1.33 and np.linalg.norm(step) > 0.8 * trust:
                trust = min(2 * trust, cap)
            refused = 0
        else:
            trust *= 0.3
            refused += 1
    return _Search(x, E, g, v, lam, it, False,
                   f"the saddle search did not reach |g| < {gtol:g} in {it} iterations "
                   f"(|g| = {np.linalg.norm(g):.3g})")


# ------------------------------------------------------------ connection check
def _segment_rise(orc, x, y, n: int, ex: float, ey: float) -> float:
    """How far the energy climbs again along the straight segment x -> y after having
    come down: max over t of E(t) - min over s <= t of E(s). At most the tolerance
    when the way from x to y runs downhill (x in y's basin, as far as a straight
    segment can tell)."""
    t = np.linspace(0.0, 1.0, n)[1:-1, None]
    E = np.concatenate([[ex], orc.energy((1 - t) * x + t * y), [ey]])
    return float(np.max(E - np.minimum.accumulate(E)))


def _connect(orc, s, Es, v, lam, ends, E_ends, tol, budget, chunk, n_seg, max_step):
    """Descents from the saddle s along +v and -v (L-BFGS, both sides batched),
    stopped when a side's straight segment to an endpoint never climbs again by more
    than ``tol["barrier"]`` (it is in that endpoint's basin) or its gradient norm is below
    ``tol["minimum"]`` (a minimum: an intermediate one if no endpoint is reachable).
    Returns, per side, ("end", i, x) / ("minimum", None, x, loss, |g|) / ("failed",
    reason, x); and the displacement used."""
    gap = Es - max(E_ends)
    dist = min(np.linalg.norm(s - e) for e in ends)
    # the first displacement: a predicted drop of a tenth of the barrier, within the
    # saddle's neighbourhood
    delta = min(np.sqrt(max(0.2 * max(gap, tol["barrier"]) / max(abs(lam), 1e-300), 0.0)),
                0.05 * dist)
    # then halved until the loss's own curvature over the step agrees with the Hessian's
    # (within a factor of 2: the quadratic model holds where the descents start), while
    # the rounding of the energies' difference stays below a tenth of that curvature;
    # else the first step on which both sides descend
    eps = float(np.finfo(orc.dtype).eps)
    first = None
    for _ in range(60):
        Ed = orc.energy(np.stack([s + delta * v, s - delta * v]))
        if np.all(Ed < Es):
            first = delta if first is None else first
            if 0.5 * lam >= (Ed.sum() - 2 * Es) / delta ** 2 >= 2.0 * lam:
                break
        if first is not None and 4 * eps * max(abs(Es), 1e-300) / delta ** 2 > 0.1 * abs(lam):
            delta = first
            break
        delta *= 0.5
    X = np.stack([s + delta * v, s - delta * v])
    out = [None, None]
    mem = [None, None]  # each side's L-BFGS pairs, kept from one stretch to the next
    used = 0
    while True:
        E, G = orc.eg(X)
        for side in range(2):
            if out[side] is not None:
                continue
            rises = [_segment_rise(orc, X[side], e, n_seg, E[side], Ee)
                     for e, Ee in zip(ends, E_ends)]
            best = int(np.argmin(rises))
            if rises[best] <= tol["barrier"]:
                out[side] = ("end", best, X[side].copy())
            elif np.linalg.norm(G[side]) <= tol["minimum"]:
                out[side] = ("minimum", None, X[side].copy(), float(E[side]),
                             float(np.linalg.norm(G[side])))
        todo = [i for i in range(2) if out[i] is None]
        if not todo:
            return out, delta
        if used >= budget:
            for i in todo:
                out[i] = ("failed", f"the descent from the saddle ({'+-'[i]}v) reached no "
                          f"endpoint's basin in {budget} iterations", X[i].copy())
            return out, delta
        n = min(chunk, budget - used)
        X[todo], got = _descend(orc, X[todo], n, max_step, [mem[i] for i in todo])
        for i, m in zip(todo, got):
            mem[i] = m
        used += n


def _descend(orc, X, iters: int, max_step: float, mem=None):
    """``iters`` L-BFGS iterations from each row of X (all rows in one batched call
    per trial), every step at most ``max_step`` long and accepted by Armijo
    backtracking, so the descent follows its valley instead of leaping across a
    ridge as a long line search may. ``mem``: each row's L-BFGS pairs from an
    earlier stretch of the same descent (None: none). Returns (X, mem)."""
    X = X.copy()
    P = len(X)
    E, G = orc.eg(X)
    mem = [m if m is not None else ([], []) for m in (mem or [None] * P)]
    for _ in range(iters):
        Dn = np.empty_like(X)
        for p in range(P):
            S, Y = mem[p]
            q = _two_loop(G[p], S, Y, max_step)
            if q @ G[p] <= 0:  # not a descent direction: steepest descent afresh
                mem[p] = ([], [])
                q = G[p] * max_step / max(np.linalg.norm(G[p]), 1e-300)
            n = np.linalg.norm(q)
            Dn[p] = -q * min(1.0, max_step / max(n, 1e-300))
        alpha = np.ones(P)
        active = np.ones(P, dtype=bool)
        Xn, En, Gn = X.copy(), E.copy(), G.copy()
        for _ in range(12):
            idx = np.nonzero(active)[0]
            if idx.size == 0:
                break
            Et, Gt = orc.eg(X[idx] + alpha[idx, None] * Dn[idx])
            for k, p in enumerate(idx):
                slope = float(G[p] @ Dn[p])
                if np.isfinite(Et[k]) and Et[k] <= E[p] + 1e-4 * alpha[p] * slope:
                    Xn[p] = X[p] + alpha[p] * Dn[p]
                    En[p], Gn[p] = Et[k], Gt[k]
                    active[p] = False
                else:
                    alpha[p] *= 0.5
        for p in range(P):
            _push(mem[p][0], mem[p][1], Xn[p] - X[p], Gn[p] - G[p])
        X, E, G = Xn, En, Gn
    return X, mem


# --------------------------------------------------------------------- certify
def _node_name(k: int, minima) -> str:
    """Node k of the chain: "a", "b" or "minimum j" (j counted from 1 as found)."""
    if k < 2:
        return "ab"[k]
    return f"minimum {[i for i, _ in minima].index(k) + 1}"


def _images_of(path_or_result, n_images):
    """The chain of images (M, D) of a PathResult, a FourierPath, an (a, b) pair (the
    straight line) or an array of images."""
    from .paths import FourierPath, PathResult

    p = path_or_result
    if isinstance(p, PathResult):
        n = n_images or int(p.settings.get("n_points", len(p.t)) or len(p.t))
        return p.path.at(np.linspace(0.0, 1.0, n))
    if isinstance(p, FourierPath):
        return p.at(np.linspace(0.0, 1.0, n_images or 50))
    if isinstance(p, tuple) and len(p) == 2:
        a, b = (np.asarray(e, dtype=np.float64) for e in p)
        if a.ndim != 1 or a.shape != b.shape:
            raise ValueError(f"path: expected two endpoints of one shape, got {a.shape} and "
                             f"{b.shape}")
        t = np.linspace(0.0, 1.0, n_images or 50)[:, None]
        return (1 - t) * a + t * b
    R = np.asarray(p)
    if R.ndim != 2 or R.shape[0] < 3 or R.dtype.kind not in "fiu":
        raise TypeError("path: expected a PathResult, a FourierPath, a pair (a, b) or "
                        f"images of shape (M >= 3, D), got {type(p).__name__} "
                        f"{getattr(R, 'shape', '')}")
    if n_images:
        raise ValueError("n_images: images given as an array are used as they are")
    return R


def _curve_of(path, ends):
    """The curve (a FourierPath between ``ends``) that ``path`` is, or None for images
    given as an array."""
    from .paths import FourierPath, PathResult

    if isinstance(path, PathResult):
        path = path.path
    if isinstance(path, FourierPath):
        return FourierPath(ends[0], ends[1], path.coeffs.astype(np.float64), curve=path.curve)
    if isinstance(path, tuple) and len(path) == 2:
        return FourierPath(ends[0], ends[1], n_modes=10)
    return None


def _positive(name, v, allow_none=True):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (
            np.isfinite(v) and v > 0):
        raise ValueError(f"{name}: must be a positive finite number, got {v!r}")
    return float(v)


def certify(landscape, path, gtol: Optional[float] = None, eig_tol: Optional[float] = None,
            barrier_tol: Optional[float] = None, endpoint_gtol: Optional[float] = None,
            neb_iters: int = 200, neb_ftol: Optional[float] = None, search_iters: int = 300,
            descent_iters: int = 2000, max_minima: int = 8, n_images: Optional[int] = None,
            lanczos_steps: int = 200, endpoints: str = "minima", neb_method: str = "lbfgs",
            climb_method: str = "fire", curve_iters: int = 100, seed: int = 0,
            progress: bool = False) -> Certificate:
    """The barrier of ``path`` with its proof (see the module docstring).

    Parameters
    ----------
    landscape : Landscape, TorchLandscape or callable ``f(X) -> (E, G)``
    path : PathResult, FourierPath, (a, b) (the straight line) or images (M, D)
    gtol : gradient norm a saddle must reach (absolute). Default: 1e-6 of the largest
        gradient norm on the path, or the endpoints' own gradient norm if larger (a
        saddle is stationary as precisely as the endpoints are minima).
    eig_tol : a Hessian eigenvalue counts as negative below ``-eig_tol`` times the
        largest eigenvalue at that point. Default: 1e-3 in float32 and 1e-6 in float64
        (well above each one's rounding of the products, and low enough for the wide
        spectra of small networks: a 13-parameter tanh net's saddle has its negative
        eigenvalue at 2.6e-4 of the largest).
    barrier_tol : how far a path may rise above its higher endpoint and still be
        barrier-free, and how far a straight segment may rise and still lie in one
        basin. Default: 1e-5 (``BARRIER_TOL``) of the given path's barrier above its
        higher endpoint. Measured (benchmarks/RESULTS.md, FCP on 10,000 MNIST images,
        from the straight line): 1e-3 stops at 16x Adam-1600's barrier for 0.8x
        Adam-100's cost, 1e-5 at 0.19x Adam-1600's for 1.4x Adam-100's; on the small
        tanh network of tests/test_saddles.py 1e-5 certifies 5 of 7 pairs against 3 of
        7 (the descents' basin test is stricter, so they end in the right basin).
    endpoint_gtol : an endpoint is a minimum to this gradient norm (default 1e-3 of the
        path's largest gradient norm).
    endpoints : what to do with endpoints that are not minima: "minima" (the default)
        refuses them (ValueError naming the endpoint); "polish" first descends them
        (L-BFGS) to the minimum of their basin and certifies the barrier between
        those; "bound" keeps them, refines the band between them all the same and
        returns its maximum as a bound ("barrier-free" where the band never rises
        above the higher endpoint), saying why nothing more is proven.
    neb_iters, neb_ftol, neb_method, climb_method : the band's budget (for each of its
        two phases: relaxed with no climbing image, stopped as soon as the chain is
        barrier-free; then, where a barrier remains, with its highest image climbing),
        force tolerance (default 10 gtol) and the optimizer of each phase ("lbfgs" or
        "fire", see :func:`neb`). The climbing phase defaults to FIRE: on the small
        tanh network of tests/test_saddles.py the saddle search converged from FIRE's
        climbing image on 7 of 7 pairs and from L-BFGS's on 0 of 7 (benchmarks/RESULTS.md);
        search_iters, descent_iters : the saddle search's and each descent's budget.
    max_minima : intermediate minima at most (each splits the path once more; between
        two copies of a small network's minimum the way can pass six).
    n_images : images of the band (default: the path's points, 50 for a FourierPath).
    curve_iters : where the path is a curve (a PathResult, a FourierPath, or (a, b):
        the straight line), L-BFGS iterations on its coefficients first
        (:func:`losstopo.paths.refine_curve`); a curve that is then barrier-free ends
        the search (its maximum on the path finder's fine grid is the evidence), else
        the band starts from it. 0: straight to the band.
    lanczos_steps : Krylov steps of the final curvature check at a saddle.
    """
    eig_tol = _positive("eig_tol", eig_tol)
    gtol = _positive("gtol", gtol)
    barrier_tol = _positive("barrier_tol", barrier_tol)
    endpoint_gtol = _positive("endpoint_gtol", endpoint_gtol)
    neb_ftol = _positive("neb_ftol", neb_ftol)
    check_int("curve_iters", curve_iters, minimum=0)
    for name, v in (("neb_iters", neb_iters), ("search_iters", search_iters),
                    ("descent_iters", descent_iters), ("lanczos_steps", lanczos_steps)):
        check_int(name, v, minimum=1)
    check_int("max_minima", max_minima, minimum=0)
    if n_images is not None:
        check_int("n_images", n_images, minimum=3)
    if endpoints not in ENDPOINTS:
        raise ValueError(f"endpoints: expected one of {ENDPOINTS}, got {endpoints!r}")
    for name, m in (("neb_method", neb_method), ("climb_method", climb_method)):
        if m not in NEB_METHODS:
            raise ValueError(f"{name}: expected one of {NEB_METHODS}, got {m!r}")
    orc = _Oracle(landscape)
    if eig_tol is None:
        eig_tol = 1e-6 if orc.dtype == np.float64 else 1e-3
    R = _images_of(path, n_images).astype(np.float64)
    if orc.D is not None and R.shape[1] != orc.D:
        raise ValueError(f"path: its points have {R.shape[1]} parameters, the landscape "
                         f"{orc.D}")
    if not np.isfinite(R).all():
        raise ValueError("path: contains NaN or Inf")
    D = R.shape[1]
    orc.enter("endpoints")
    E0, G0 = orc.eg(R)
    if not np.isfinite(E0).all():
        raise ValueError("path: the energy is not finite along it")
    gscale = float(np.linalg.norm(G0, axis=1).max())
    g_ends = np.linalg.norm(G0[[0, -1]], axis=1)
    if endpoint_gtol is None:
        endpoint_gtol = max(1e-3 * gscale, 1e-300)
    ends = [R[0].copy(), R[-1].copy()]
    E_ends = [float(E0[0]), float(E0[-1])]
    polished, not_minima = [], []
    for i, name in enumerate("ab"):
        if g_ends[i] <= endpoint_gtol:
            continue
        why = (f"its endpoint {name} is not a minimum (gradient norm {g_ends[i]:.3g}, above "
               f"endpoint_gtol {endpoint_gtol:.3g})")
        if endpoints == "bound":
            not_minima.append(why)
            continue
        if endpoints == "minima":
            raise ValueError(
                f"path: {why}; minimize it first, or pass endpoints='polish' to certify "
                "the barrier between the minima of their basins, or endpoints='bound' for "
                "the refined path's maximum as a bound")
        from .optimize import minimize

        r = minimize(landscape, np.ascontiguousarray(ends[i], dtype=orc.dtype),
                     max_iter=descent_iters, gtol=0.0, line_search="strong_wolfe")
        orc.gradients += int(r.nfev)
        x = np.asarray(r.x, dtype=np.float64)
        Ex, Gx = orc.eg(x)
        polished.append(dict(endpoint=name, shift=float(np.linalg.norm(x - ends[i])),
                             grad_norm_before=float(g_ends[i]),
                             grad_norm=float(np.linalg.norm(Gx[0]))))
        ends[i], E_ends[i], g_ends[i] = x, float(Ex[0]), float(np.linalg.norm(Gx[0]))
    if polished:  # the band runs between the polished minima, through the given path
        t = np.linspace(0.0, 1.0, len(R))[:, None]
        R = R + (1 - t) * (ends[0] - R[0]) + t * (ends[1] - R[-1])
        E0, G0 = orc.eg(R)
    if gtol is None:
        gtol = 1e-6 * gscale
        if not not_minima:
            gtol = max(gtol, float(g_ends.max()))
    rise0 = float(E0.max() - max(E_ends))
    if barrier_tol is None:
        barrier_tol = max(BARRIER_TOL * rise0, 1e-12 * max(1.0, abs(max(E_ends))))
    neb_ftol = neb_ftol or 10 * gtol
    curve = _curve_of(path, ends) if curve_iters else None
    history = []
    if curve is not None:
        # 0. the curve itself refined first: L-BFGS on its coefficients, in the path
        # finder's batched steps (its basis products held), far cheaper per iteration
        # than a band of free images
        from .paths import refine_curve

        orc.enter("curve")
        lam = float(getattr(path, "settings", {}).get("lam", 1e-4)) if hasattr(
            path, "settings") else 1e-4
        cr = refine_curve(landscape, curve, steps=curve_iters, n_points=len(R), lam=lam,
                          stop_rise=0.5 * barrier_tol)
        orc.gradients += int(cr.evaluations)
        peak = float(cr.barrier_refined)
        history.append(peak)
        if peak - max(E_ends) <= barrier_tol:
            tol = dict(gtol=gtol, eig_tol=eig_tol, barrier=barrier_tol,
                       endpoint_gtol=endpoint_gtol, neb_ftol=neb_ftol, polished=polished)
            return Certificate(
                status="barrier-free", barrier=peak, reason="", history=np.array(history),
                endpoint_losses=(E_ends[0], E_ends[1]), tolerances=tol,
                evaluations=orc.evaluations(),
                pieces=[dict(status="barrier-free", barrier=peak, reason="")])
        if peak < float(E0.max()):
            R = cr.path.at(np.linspace(0.0, 1.0, len(R))).astype(np.float64)
            R[0], R[-1] = ends[0], ends[1]
    if not_minima:
        return _bound_between(landscape, orc, R, E_ends, neb_ftol, neb_iters, neb_method,
                              barrier_tol, gtol, eig_tol, endpoint_gtol, not_minima, history,
                              history[0] if curve is not None else np.inf)
    tol = dict(gtol=gtol, eig_tol=eig_tol, barrier=barrier_tol, endpoint_gtol=endpoint_gtol,
               minimum=max(gtol, float(g_ends.max())), neb_ftol=neb_ftol)

    saddles, minima, pieces = [], [], []
    # pieces to certify, in order from a to b: (images, index of its start and end
    # among the nodes) where nodes are a, the intermediate minima found, b
    nodes = [(ends[0], E_ends[0]), (ends[1], E_ends[1])]
    queue = [(R, 0, 1)]
    done = []  # (start node, end node, status, barrier, reason, saddle or None)
    bar = Progress(max_minima + 1, "certify (pieces)", enabled=progress)
    try:
        while queue:
            images, i0, i1 = queue.pop(0)
            (xa, ea), (xb, eb) = nodes[i0], nodes[i1]
            orc.enter("band")
            Eim = np.concatenate([[ea], orc.energy(images[1:-1]), [eb]])
            if float(Eim.max()) - max(ea, eb) <= barrier_tol:
                peak = _polyline_max(orc, images, Eim)
                if peak - max(ea, eb) <= barrier_tol:
                    done.append((i0, i1, "barrier-free", peak, "", None))
                    bar.update(1)
                    continue
            # 1. the band relaxed to the minimum-energy path with no image climbing (a
            # climbing image started early climbs the slopes of a path that has no
            # barrier at all), stopped as soon as no image rises above the tolerance
            band = neb(landscape, images, ftol=neb_ftol, max_iter=neb_iters, climb=False,
                       method=neb_method, stop_rise=0.5 * barrier_tol, _oracle=orc)
            history.extend(band.history.tolist())
            # the band's chain of straight segments: a path, its maximum a bound
            top = _polyline_max(orc, band.images, band.energies)
            if top - max(ea, eb) <= barrier_tol:
                done.append((i0, i1, "barrier-free", top, "", None))
                bar.update(1)
                continue
            # 2. a barrier remains: the highest image climbs to the saddle
            orc.enter("climb")
            band = neb(landscape, band.images, ftol=neb_ftol, max_iter=neb_iters, climb=True,
                       method=climb_method, _oracle=orc)
            history.extend(band.history.tolist())
            top = min(top, _polyline_max(orc, band.images, band.energies))
            if (i0, i1) == (0, 1) and curve is not None:  # the refined curve's, too
                top = min(top, history[0])
            c = band.climber
            tau = _tangents(band.images, band.energies)[c - 1]
            spacing = float(np.linalg.norm(np.diff(band.images, axis=0), axis=1).mean())
            orc.enter("saddle search")
            found = saddle_search(landscape, band.images[c], tau, gtol=gtol,
                                  max_iter=search_iters, max_step=0.1 * spacing, seed=seed,
                                  _oracle=orc)
            if not found.converged:
                done.append((i0, i1, "bound only", top, found.reason, None))
                bar.update(1)
                continue
            s = found.x
            orc.enter("curvature")
            vals, vecs, res, lmax, ok = _lanczos_ends(lambda Q: orc.hv(s, Q), D, found.v,
                                                      lanczos_steps, 1e-4, low=2, seed=seed)
            thr = -eig_tol * abs(lmax)
            index = int(np.sum(vals < thr))
            g_s = float(np.linalg.norm(found.grad))
            sad = Saddle(theta=s.astype(orc.dtype), loss=found.loss, grad_norm=g_s,
                         eigenvalues=vals, top_eigenvalue=lmax, index=index)
            if not ok:
                why = (f"the curvature at the saddle did not converge in {lanczos_steps} "
                       "Lanczos steps (raise lanczos_steps)")
                done.append((i0, i1, "bound only", top, why, sad))
                bar.update(1)
                continue
            if index != 1 or len(vals) < 2 and index != 1:
                why = (f"the stationary point has index {index} (eigenvalues "
                       f"{np.array2string(vals, precision=4)} against -eig_tol * "
                       f"{lmax:.4g}), not 1")
                done.append((i0, i1, "bound only", min(top, found.loss) if index == 1 else top,
                             why, sad))
                bar.update(1)
                continue
            v = vecs[0]
            orc.enter("connection")
            sides, delta = _connect(orc, s, found.loss, v, float(vals[0]), [xa, xb], [ea, eb],
                                    tol, descent_iters, 10, 21,
                                    0.02 * float(np.linalg.norm(xb - xa)))
            # the Hessian describes the loss at the scale the descents start from
            Ed = orc.energy(np.stack([s + delta * v, s - delta * v]))
            curv = float((Ed.sum() - 2 * found.loss) / delta ** 2)
            if not (0.5 * vals[0] >= curv >= 2.0 * vals[0]):
                sad.second_order = "not meaningful"
                why = (f"second-order certification is not meaningful at this point: the "
                       f"loss's curvature along the negative eigenvector over a step of "
                       f"{delta:.3g} is {curv:.4g}, the Hessian's {vals[0]:.4g}"
                       + (" (piecewise-linear activations)" if orc.piecewise_linear else ""))
                done.append((i0, i1, "bound only", top, why, sad))
                bar.update(1)
                continue
            def add_minimum(o):
                """A descent's minimum o as a new node of the chain; its index."""
                nodes.append((o[2], o[3]))
                minima.append((len(nodes) - 1, Minimum(o[2].astype(orc.dtype), o[3], o[4])))
                return len(nodes) - 1

            t = np.linspace(0, 1, len(images))[:, None]

            def line(p, q):
                return (1 - t) * p + t * q

            kinds = [o[0] for o in sides]
            sad.connects = tuple(_node_name((i0, i1)[o[1]], minima) if o[0] == "end"
                                 else f"a minimum at loss {o[3]:.6g}" if o[0] == "minimum"
                                 else o[0] for o in sides)
            if "failed" in kinds:
                why = "; ".join(o[1] for o in sides if o[0] == "failed")
                done.append((i0, i1, "bound only", top, why, sad))
            elif kinds == ["end", "end"] and {sides[0][1], sides[1][1]} == {0, 1}:
                done.append((i0, i1, "certified", found.loss, "", sad))
            elif kinds.count("end") == 1 and len(minima) < max_minima:
                e = sides[kinds.index("end")]
                m = sides[kinds.index("minimum")]
                k = add_minimum(m)
                sad.connects = tuple(_node_name(k, minima) if o is m else c
                                     for o, c in zip(sides, sad.connects))
                if e[1] == 0:  # this saddle joins a and the new minimum; on to b
                    done.append((i0, k, "certified", found.loss, "", sad))
                    queue.insert(0, (line(m[2], xb), k, i1))
                else:
                    done.append((k, i1, "certified", found.loss, "", sad))
                    queue.insert(0, (line(xa, m[2]), i0, k))
            elif kinds == ["minimum", "minimum"] and len(minima) + 2 <= max_minima:
                # a saddle between two intermediate minima: the chain a .. m .. m' .. b,
                # m the one nearer a; this piece is certified, the two outer ones next
                m, mb = sides
                if (np.linalg.norm(m[2] - xa) + np.linalg.norm(mb[2] - xb)
                        > np.linalg.norm(mb[2] - xa) + np.linalg.norm(m[2] - xb)):
                    m, mb = mb, m
                ks = [add_minimum(m), add_minimum(mb)]
                sad.connects = tuple(_node_name(k, minima) for k in ks)
                done.append((ks[0], ks[1], "certified", found.loss, "", sad))
                queue[:0] = [(line(xa, m[2]), i0, ks[0]), (line(mb[2], xb), ks[1], i1)]
            else:
                why = ("the saddle does not join the two ends: its descents reach "
                       + " and ".join(sad.connects))
                if "minimum" in kinds:
                    why += (f" (no room for more intermediate minima: max_minima = "
                            f"{max_minima})")
                elif sides[0][1] == sides[1][1]:
                    why += " (the same end on both sides: the saddle is off the way between them)"
                done.append((i0, i1, "bound only", top, why, sad))
            bar.update(1)
    finally:
        bar.close()
    # order the pieces from a to b along the chain of nodes
    nxt = {p[0]: p for p in done}
    chain, at = [], 0
    while at in nxt and len(chain) < len(done):
        chain.append(nxt[at])
        at = nxt[at][1]
    if at != 1:  # not a chain from a to b (should not happen); keep what was done
        chain = done
    for p in chain:
        pieces.append(dict(status=p[2], barrier=float(p[3]), reason=p[4]))
        if p[5] is not None:
            saddles.append(p[5])
    order = [p[1] for p in chain if p[1] != 1]
    mins = dict(minima)
    ordered_minima = [mins[k] for k in order if k in mins]
    statuses = [p["status"] for p in pieces]
    barrier = max(p["barrier"] for p in pieces)
    if "bound only" in statuses:
        status = "bound only"
        reason = "; ".join(p["reason"] for p in pieces if p["status"] == "bound only")
    elif "certified" in statuses:
        status, reason = "certified", ""
    else:
        status, reason = "barrier-free", ""
    if orc.piecewise_linear and status == "certified":
        reason = ("piecewise-linear activations: the second-order check holds at the "
                  "saddle's scale (see saddles[].second_order)")
    tol["polished"] = polished
    return Certificate(status=status, barrier=float(barrier), reason=reason, saddles=saddles,
                       minima=ordered_minima, endpoint_losses=(E_ends[0], E_ends[1]),
                       history=np.array(history), tolerances=tol,
                       evaluations=orc.evaluations(),
                       pieces=pieces)


def _polyline_max(orc, images, energies, per_segment: int = 3) -> float:
    """The highest energy of the chain of straight segments through ``images`` (the
    path a band stands for, and the maximum a bound or a barrier-free verdict rests
    on): ``per_segment`` points inside every segment (one batched call), then Brent's
    method on the segment holding the highest of them."""
    from scipy.optimize import minimize_scalar

    images = np.asarray(images)
    M = len(images)
    t = np.linspace(0.0, 1.0, per_segment + 2)[1:-1]
    X = ((1 - t)[None, :, None] * images[:-1, None] + t[None, :, None] * images[1:, None])
    E = orc.energy(X.reshape(-1, images.shape[1])).reshape(M - 1, per_segment)
    i, k = np.unravel_index(int(np.argmax(E)), E.shape)
    top = max(float(np.max(energies)), float(E[i, k]))
    if E[i, k] < np.max(energies):  # the highest point is an image: look beside it
        c = int(np.argmax(energies))
        i, k = (c - 1, per_segment - 1) if c > 0 and (c == M - 1 or E[c - 1, -1] >= E[c, 0]) \
            else (c, 0)
        if not 0 <= i < M - 1:
            return top
    lo, hi = (t[k - 1] if k else 0.0), (t[k + 1] if k + 1 < len(t) else 1.0)
    seg = lambda u: -float(orc.energy((1 - u) * images[i] + u * images[i + 1])[0])  # noqa
    r = minimize_scalar(seg, bounds=(lo, hi), method="bounded",
                        options=dict(xatol=1e-6 * (hi - lo)))
    return max(top, -float(r.fun))


def _bound_between(landscape, orc, R, E_ends, ftol, iters, method, barrier_tol, gtol,
                   eig_tol, endpoint_gtol, why, history=(),
                   curve_peak: float = np.inf) -> Certificate:
    """certify(endpoints="bound"): the band refined between endpoints that are not
    minima (no climbing image), its chain's maximum a bound (the given path's where
    that is lower), or no barrier at all."""
    # no climbing: between points that are not minima the climbing image may climb the
    # slope towards an endpoint instead of reaching a saddle
    orc.enter("band")
    band = neb(landscape, R, ftol=ftol, max_iter=iters, climb=False, method=method,
               _oracle=orc)
    # the lower of two paths' maxima: the band's chain, and the refined curve's (its
    # images' maximum bounds nothing: the curve may rise between them)
    top = min(_polyline_max(orc, band.images, band.energies), curve_peak)
    tol = dict(gtol=gtol, eig_tol=eig_tol, barrier=barrier_tol, endpoint_gtol=endpoint_gtol,
               neb_ftol=ftol, polished=[])
    ev = orc.evaluations()
    if top - max(E_ends) <= barrier_tol:
        status, reason, barrier = "barrier-free", "", top
    else:
        status, barrier = "bound only", top
        reason = ("; ".join(why) + ": the refined path's maximum is an upper bound (no "
                  "saddle is certified between points that are not minima)"
                  + ("" if band.converged else
                     f"; the band did not reach its force tolerance in {iters} iterations"))
    return Certificate(status=status, barrier=float(barrier), reason=reason,
                       endpoint_losses=(E_ends[0], E_ends[1]),
                       history=np.concatenate([history, band.history]),
                       tolerances=tol, evaluations=ev,
                       pieces=[dict(status=status, barrier=float(barrier), reason=reason)])


# certify's options (what find_path(certify={...}) and barrier_matrix accept)
CERTIFY_OPTIONS = tuple(p for p in __import__("inspect").signature(certify).parameters
                        if p not in ("landscape", "path", "progress"))
