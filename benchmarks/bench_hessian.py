"""Curvature and slices of FCP on MNIST: Hessian-vector products against one batched
loss+grad and against torch.func, the top eigenvalue against a PyHessian-style power
iteration in torch autograd, and a 51 x 51 filter-normalized slice against its points
evaluated one at a time. All in one process.

    python benchmarks/bench_hessian.py [--n 50000] [--probes 10] [--grid 51]
        [--quick] [--no-append]

The point is an SGD solution trained here (10 epochs on the same data).
Hessian-vector products: P probes at one point (losstopo shares the forward pass
between them), against one loss+grad of P vectors, and against torch.func
(vmap over the probes of jvp of grad). Top eigenvalue to 1e-3 relative accuracy:
Lanczos on the engine's products (stopped by its residual bound), against power
iteration with
double-backward products (PyHessian's method and stopping rule: relative change
< 1e-3), both on the full batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402
from losstopo import curvature  # noqa: E402
from losstopo.bench.landscape import torch_loss  # noqa: E402
from losstopo.bench.peers import load  # noqa: E402
from losstopo.slices import slice2d  # noqa: E402


def torch_power_iteration(f, theta, tol=1e-3, max_iter=500, seed=0, exact=None):
    """PyHessian's top eigenvalue: power iteration on double-backward products,
    stopped when the eigenvalue changes by less than tol (relative), or with
    ``exact``, when it lies within tol of it."""
    import torch

    w = torch.tensor(theta, requires_grad=True)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(w.shape, generator=g, dtype=w.dtype)
    v /= v.norm()
    lam, iters = None, 0
    for iters in range(1, max_iter + 1):
        (gw,) = torch.autograd.grad(f(w), w, create_graph=True)
        (hv,) = torch.autograd.grad(gw, w, grad_outputs=v)
        new = float(torch.dot(hv, v))
        v = hv / hv.norm()
        if exact is not None:
            if abs(new - exact) < tol * abs(exact):
                lam = new
                break
        elif lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol:
            lam = new
            break
        lam = new
    return lam, iters


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--probes", type=int, default=10)
    p.add_argument("--grid", type=int, default=51)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.n, a.grid, a.epochs = 2000, 11, 2
    X, y, source = common.mnist_like(a.n)
    net = losstopo.fcp()
    ls = losstopo.Landscape(net, X, y)
    theta = losstopo.train(net, ls, method="sgd", runs=1, epochs=a.epochs, seed=0,
                           progress=False).theta_best_train[0].astype(np.float64)
    P = a.probes
    rng = np.random.default_rng(0)
    V = rng.choice([-1.0, 1.0], size=(P, net.num_params)).astype(np.float32)
    th32 = theta.astype(np.float32)
    rows = []

    # Hessian-vector products against one loss+grad of P vectors.
    pts = (th32 + 1e-3 * V).astype(np.float32)
    t_lg = common.best_time(lambda: ls.loss_and_grad(pts), repeat=3)
    t_hv = common.best_time(lambda: ls.hessian_vector(th32, V), repeat=3)
    t_hv_each = common.best_time(lambda: ls.hessian_vector(pts, V), repeat=3)
    rows.append([f"loss+grad of {P} vectors", f"{t_lg * 1e3:.0f} ms", "1.00x", ""])
    rows.append([f"{P} Hessian-vector products at one point", f"{t_hv * 1e3:.0f} ms",
                 f"{t_hv / t_lg:.2f}x", ""])
    rows.append([f"{P} Hessian-vector products at {P} points", f"{t_hv_each * 1e3:.0f} ms",
                 f"{t_hv_each / t_lg:.2f}x", ""])
    torch, status = load("torch")
    t_power = None
    if torch is not None:
        from torch import func as tfunc

        f = torch_loss(net, X, y)
        tt = torch.tensor(th32)
        Vt = torch.tensor(V)

        def torch_hvp():
            return tfunc.vmap(lambda v: tfunc.jvp(tfunc.grad(f), (tt,), (v,))[1])(Vt)

        t_torch = common.best_time(torch_hvp, repeat=3)
        ref = torch_hvp().numpy()
        err = np.abs(ls.hessian_vector(th32, V) - ref).max() / np.abs(ref).max()
        rows.append([f"torch.func: vmap of jvp of grad, {P} probes", f"{t_torch * 1e3:.0f} ms",
                     f"{t_torch / t_lg:.2f}x",
                     f"losstopo {t_torch / t_hv:.1f}x faster; max difference {err:.1e}"])
    else:
        rows.append(["torch.func", status, "", ""])

    # Top eigenvalue to 1e-3.
    ls64 = losstopo.Landscape(net, X, y, dtype="float64")
    t0 = time.perf_counter()
    vals, _, products = curvature.top_eigenvalues(ls, theta, k=1, tol=1e-3)
    t_lanczos = time.perf_counter() - t0
    t0 = time.perf_counter()
    sharp = curvature.sharpness(ls, theta[None], tol=1e-3)[0]
    t_sharp = time.perf_counter() - t0
    exact = curvature.top_eigenvalues(ls64, theta, k=1, tol=1e-8)[0][0]
    rows.append(["top eigenvalue, Lanczos (tol 1e-3)", f"{t_lanczos:.2f} s",
                 f"{products} products", f"{vals[0]:.5g} (rel. error "
                 f"{abs(vals[0] - exact) / exact:.1e})"])
    rows.append(["top eigenvalue, batched Lanczos (sharpness, tol 1e-3)", f"{t_sharp:.2f} s", "",
                 f"{sharp:.5g} (rel. error {abs(sharp - exact) / exact:.1e})"])
    if torch is not None:
        f32 = torch_loss(net, X, y)
        torch_power_iteration(f32, th32, max_iter=2)  # warm-up
        t0 = time.perf_counter()
        lam, iters = torch_power_iteration(f32, th32)
        t_power = time.perf_counter() - t0
        rows.append(["top eigenvalue, torch power iteration (PyHessian's rule)",
                     f"{t_power:.2f} s", f"{iters} products",
                     f"{lam:.5g} (rel. error {abs(lam - exact) / exact:.1e}); losstopo "
                     f"{t_power / t_lanczos:.1f}x faster"])
        t0 = time.perf_counter()
        lam, iters = torch_power_iteration(f32, th32, exact=exact)
        t_true = time.perf_counter() - t0
        rows.append(["top eigenvalue, torch power iteration to within 1e-3 of the exact value",
                     f"{t_true:.2f} s", f"{iters} products",
                     f"{lam:.5g}; losstopo (Lanczos) {t_true / t_lanczos:.1f}x faster"])

    # 51 x 51 filter-normalized slice against its points one at a time.
    n = a.grid
    t0 = time.perf_counter()
    sl = slice2d(ls, theta, "filter", n=n, span=1.0, seed=0, accuracy=False)
    t_slice = time.perf_counter() - t0
    d1, d2 = sl.directions
    t0 = time.perf_counter()
    direct = np.array([[ls.loss((theta + xv * d1 + yv * d2).astype(np.float32))
                        for xv in sl.xs] for yv in sl.ys])
    t_points = time.perf_counter() - t0
    slice_err = np.abs(direct - sl.loss).max() / np.abs(direct).max()
    rows.append([f"{n} x {n} filter-normalized slice (loss)", f"{t_slice:.2f} s", "",
                 f"{t_points / t_slice:.1f}x faster than {n * n} single points "
                 f"({t_points:.1f} s); max rel. difference {slice_err:.1e}"])
    assert np.isfinite(sl.loss).all()

    table = common.markdown_table(["measure", "time", "ratio", "note"], rows)
    body = (f"FCP (784-50-50-10, softplus), {source}, N = {a.n}, float32 (the exact eigenvalue "
            f"{exact:.6g} in float64); the point: one SGD solution ({a.epochs} epochs, lr 0.1, batch 64); "
            f"{P} Rademacher probes.\n\n" + table)
    print(body)
    if not a.no_append and not a.quick:
        common.append_results("bench_hessian: curvature and slices", body,
                              extra_modules=(torch,) if torch is not None else ())


if __name__ == "__main__":
    main()
