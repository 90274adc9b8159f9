"""Cost of one FourierPathFinder step on FCP against the authors' per-point PyTorch
approach and torch.func vmap over the points, measured in the same process.

    python benchmarks/bench_paths.py [--quick] [--no-append]
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
from losstopo._native import core  # noqa: E402

try:
    import torch
    from torch import func as tfunc
except ImportError:
    torch = None


def sine_basis(M, K):
    t = np.linspace(0, 1, M)
    return t, np.sin(np.outer(t, np.arange(1, K + 1)) * np.pi)


def torch_setup(X, y):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def loss(theta):
        W1 = theta[:39200].reshape(50, 784)
        W2 = theta[39200:41700].reshape(50, 50)
        W3 = theta[41700:].reshape(10, 50)
        h = torch.relu(Xt @ W1.T)
        h = torch.relu(h @ W2.T)
        return torch.nn.functional.cross_entropy(h @ W3.T, yt)

    return loss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args(argv)
    N = 5000 if args.quick else 50_000
    M, K, steps = 50, 10, (3 if args.quick else 5)
    X, y, source = common.mnist_like(N)
    net = losstopo.fcp()
    ls = losstopo.Landscape(net, X, y)
    a, b = net.init(2, seed=0)
    rows = []

    # losstopo: Adam steps of the path finder (one batched engine call per step).
    def optimize(n):
        pb = core.PathBatchF32(ls.engine, a[None], b[None],
                               core.PathParams(n_modes=K, n_points=M, steps=n))
        t0 = time.perf_counter()
        pb.optimize()
        return time.perf_counter() - t0, pb

    optimize(1)  # warm up
    t_final, _ = optimize(0)  # the closing evaluation of the best path alone
    t_all, pb = optimize(steps)
    t_ours = (t_all - t_final) / steps
    # One batched loss-and-gradient of the M - 2 interior points, for the overhead.
    W = pb.points(pb.coeffs, pb.t[1:-1])[0]
    t_lg = common.best_time(lambda: ls.loss_and_grad(W), repeat=2)
    rows.append(["losstopo FourierPathFinder step", f"{t_ours:.3f}", "1.00x",
                 f"{t_ours / t_lg:.3f}x of one batched loss+grad of {M - 2} points "
                 f"({t_lg:.3f} s)"])

    if torch is not None:
        loss = torch_setup(X, y)
        t, S = sine_basis(M, K)
        A, B = torch.from_numpy(a), torch.from_numpy(b)
        C = torch.zeros(K, a.size)
        Wt = torch.from_numpy(((1 - t)[:, None] * a + t[:, None] * b).astype(np.float32))

        def authors_step():  # one point at a time, gradients accumulated
            G = torch.zeros_like(C)
            for m in range(1, M - 1):
                w = (Wt[m] + torch.from_numpy(S[m].astype(np.float32)) @ C).requires_grad_(True)
                f = loss(w)
                f.backward()
                G += torch.from_numpy(S[m, :, None].astype(np.float32)) * w.grad[None, :]
            return G

        vg = tfunc.vmap(tfunc.grad_and_value(loss))

        def vmap_step():
            return vg(Wt[1:-1] + torch.from_numpy(S[1:-1].astype(np.float32)) @ C)

        t_auth = common.best_time(authors_step, repeat=1, warmup=0)
        t_vmap = common.best_time(vmap_step, repeat=2, warmup=1)
        rows.append(["authors' approach (PyTorch, one point at a time)", f"{t_auth:.3f}",
                     f"{t_auth / t_ours:.2f}x", ""])
        rows.append(["torch.func vmap over the points", f"{t_vmap:.3f}",
                     f"{t_vmap / t_ours:.2f}x", ""])
        del A, B
    table = common.markdown_table(["method", "s per path step", "losstopo speedup", "note"],
                                  rows)
    body = (f"FCP, N = {N} ({source}), M = {M} points, {K} modes, float32; the speedup "
            f"column is the peer's time over losstopo's.\n\n{table}")
    print(body)
    if not args.no_append:
        common.append_results("bench_paths: one FourierPathFinder step", body,
                              [m for m in (torch,) if m is not None])


if __name__ == "__main__":
    main()
