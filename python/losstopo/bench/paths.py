"""Suite "paths": the cost of one FourierPathFinder step (Adam on the Fourier
coefficients of a path of M points) on FCP, against the authors' per-point PyTorch
approach and torch.func vmap over the points, in the same process."""

from __future__ import annotations

import time

import numpy as np

from ..progress import Progress
from . import preset
from .data import describe, mnist_like
from .landscape import torch_loss
from .peers import load, torch_threads
from .table import ratio
from .timing import best_time

TITLE = "one FourierPathFinder step, against PyTorch"

#: N; points M; Fourier modes K; the Adam steps timed.
SIZES = {
    "full": dict(n=50_000, points=50, modes=10, steps=5),
    "quick": dict(n=5_000, points=50, modes=10, steps=3),
    "tiny": dict(n=256, points=8, modes=3, steps=4),
}


def sine_basis(M, K):
    """The M points' parameters t in [0, 1] and the sine basis (M, K) of the path."""
    t = np.linspace(0, 1, M)
    return t, np.sin(np.outer(t, np.arange(1, K + 1)) * np.pi)


def bench_ours(ls, a, b, M, K, steps):
    """Seconds per Adam step of the core's path optimizer (one batched engine call per
    step), and of one batched loss and gradient of the M - 2 interior points."""
    from .._native import core

    def optimize(n):
        pb = core.PathBatchF32(ls.engine, a[None], b[None],
                               core.PathParams(n_modes=K, n_points=M, steps=n))
        t0 = time.perf_counter()
        pb.optimize()
        return time.perf_counter() - t0, pb

    optimize(1)  # warm up
    t_final, _ = optimize(0)  # the closing evaluation of the best path alone
    t_all, pb = optimize(steps)
    t_step = (t_all - t_final) / steps
    W = pb.points(pb.coeffs, pb.t[1:-1])[0]
    t_lg = best_time(lambda: ls.loss_and_grad(W), repeat=2)
    return t_step, t_lg


def bench_torch(net, X, y, a, b, M, K, torch):
    """Seconds per path step of the authors' approach (one point at a time, gradients
    accumulated) and of torch.func vmap over the interior points."""
    from torch import func as tfunc

    loss = torch_loss(net, X, y)
    t, S = sine_basis(M, K)
    C = torch.zeros(K, a.size)
    Wt = torch.from_numpy(((1 - t)[:, None] * a + t[:, None] * b).astype(np.float32))
    S32 = torch.from_numpy(S.astype(np.float32))

    def authors_step():
        G = torch.zeros_like(C)
        for m in range(1, M - 1):
            w = (Wt[m] + S32[m] @ C).requires_grad_(True)
            f = loss(w)
            f.backward()
            G += S32[m, :, None] * w.grad[None, :]
        return G

    vg = tfunc.vmap(tfunc.grad_and_value(loss))

    def vmap_step():
        return vg(Wt[1:-1] + S32[1:-1] @ C)

    t_auth = best_time(authors_step, repeat=1, warmup=0)
    t_vmap = best_time(vmap_step, repeat=2, warmup=1)
    return t_auth, t_vmap


def run(size="full", threads=None, progress=True) -> dict:
    """Times a path step of losstopo and of the torch approaches when torch is
    installed; returns the suite's numbers, notes and table."""
    import losstopo

    sz = preset(SIZES, size)
    N, M, K, steps = sz["n"], sz["points"], sz["modes"], sz["steps"]
    torch, torch_status = load("torch")
    bar = Progress(3, "bench paths", enabled=progress)
    bar.update(0, postfix="data")
    X, y, source = mnist_like(N)
    net = losstopo.fcp()
    ls = losstopo.Landscape(net, X, y, threads=threads)
    a, b = net.init(2, seed=0)
    bar.update(1, postfix="losstopo")
    t_ours, t_lg = bench_ours(ls, a, b, M, K, steps)
    ours = dict(case="path_step", method="losstopo FourierPathFinder step",
                implementation="losstopo", seconds=t_ours,
                loss_and_grad_seconds=t_lg, of_loss_and_grad=t_ours / t_lg, ratio={})
    cases = [ours]
    rows = [["losstopo FourierPathFinder step", f"{t_ours:.3f}", "1.00x",
             f"{t_ours / t_lg:.3f}x of one batched loss+grad of {M - 2} points "
             f"({t_lg:.3f} s)"]]
    bar.update(1, postfix="torch")
    peers = (("torch_per_point", "authors' approach (PyTorch, one point at a time)"),
             ("torch_vmap", "torch.func vmap over the points"))
    if torch is not None:
        with torch_threads(torch, threads):
            times = bench_torch(net, X, y, a, b, M, K, torch)
        for (key, label), t in zip(peers, times):
            ours["ratio"][key] = t / t_ours
            cases.append(dict(case="path_step", method=label, implementation="torch",
                              seconds=t))
            rows.append([label, f"{t:.3f}", ratio(t / t_ours), ""])
    else:
        rows += [[label, torch_status, "-", ""] for _, label in peers]
    bar.update(1)
    bar.close()
    return {
        "suite": "paths",
        "title": TITLE,
        "size": size,
        "sizes": sz,
        "data": source,
        "versions": {"torch": torch_status},
        "cases": cases,
        "notes": [f"FCP, N = {N} ({source}), M = {M} points, {K} modes, float32, "
                  f"{steps} steps timed; the speedup column is the peer's time over "
                  f"losstopo's.  ", describe(source, N)],
        "headers": ["method", "s per path step", "losstopo speedup", "note"],
        "rows": rows,
    }
