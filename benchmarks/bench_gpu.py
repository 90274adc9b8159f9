"""GPU benchmark: FCP loss-and-gradient (N = 50,000, P = 50) in fp32 and tf32 against
torch.func vmap on the same GPU, one path step and one L-BFGS iteration, and the
card's measured GEMM ceiling; prints one table and appends it to RESULTS.md.

    python benchmarks/bench_gpu.py [--no-append]
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args(argv)
    import torch
    from torch import func as tfunc

    if not losstopo.cuda_available():
        raise SystemExit("no CUDA backend or no GPU")
    name = torch.cuda.get_device_name(0)
    N, P = 50_000, 50
    rng = np.random.default_rng(0)
    X = rng.random((N, 784), dtype=np.float32)
    y = rng.integers(0, 10, N)
    net = losstopo.fcp()
    theta = net.init(P, seed=1)
    flops = 6.0 * N * net.num_params * P
    rows = []

    def sync_time(fn, repeat=5):
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        return best

    # the GEMM ceiling of the card, fp32 and tf32
    a = torch.rand(8192, 8192, device="cuda")
    ceil = {}
    for prec in ("fp32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        t = sync_time(lambda: a @ a)
        ceil[prec] = 2 * 8192**3 / t / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False

    # torch.func vmap peer
    Xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()

    def loss(th):
        h = torch.relu(Xt @ th[:39200].reshape(50, 784).T)
        h = torch.relu(h @ th[39200:41700].reshape(50, 50).T)
        return torch.nn.functional.cross_entropy(h @ th[41700:].reshape(10, 50).T, yt)

    vg = tfunc.vmap(tfunc.grad_and_value(loss))
    tt = torch.from_numpy(theta).cuda()
    for prec in ("fp32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        t_torch = sync_time(lambda: vg(tt))
        ls = losstopo.Landscape(net, X, y, device="cuda", precision=prec)
        t_ours = common.best_time(lambda: ls.loss_and_grad(theta), repeat=5)
        g = flops / t_ours / 1e9
        rows.append([f"(a) FCP loss+grad N={N} P={P}", prec, f"{t_ours * 1e3:.1f} ms",
                     f"{g:.0f} GFLOP/s ({100 * g / ceil[prec]:.0f}% of {ceil[prec]:.0f})",
                     f"{t_torch / t_ours:.2f}x vs torch.func vmap ({t_torch * 1e3:.1f} ms)"])
    torch.backends.cuda.matmul.allow_tf32 = False
    ls = losstopo.Landscape(net, X, y, device="cuda")
    a0, b0 = theta[:2]
    t0 = time.perf_counter()
    losstopo.find_path(ls, a0, b0, steps=5, refine=False, progress=False)
    t_path = (time.perf_counter() - t0) / 6
    rows.append(["(b) path step, M=50", "fp32", f"{t_path * 1e3:.1f} ms", "", ""])
    t0 = time.perf_counter()
    r = losstopo.minimize(ls, theta[0], max_iter=10, gtol=0.0)
    t_it = (time.perf_counter() - t0) / max(r.nit, 1)
    rows.append(["(b) L-BFGS-GSS iteration, 1 network", "fp32", f"{t_it * 1e3:.1f} ms", "", ""])
    # (c) Hessian-vector products: 10 directions at one point, against torch.func
    V = np.sign(rng.standard_normal((10, net.num_params))).astype(np.float32)
    t_hv = common.best_time(lambda: ls.hessian_vector(theta[0], V), repeat=5)
    t_lg = common.best_time(lambda: ls.loss_and_grad(theta[:10]), repeat=5)
    t0v, Vt = tt[0], torch.from_numpy(V).cuda()
    hvp = tfunc.vmap(lambda v: tfunc.jvp(tfunc.grad(loss), (t0v,), (v,))[1])
    t_thv = sync_time(lambda: hvp(Vt))
    rows.append(["(c) 10 Hessian-vector products, one point", "fp32", f"{t_hv * 1e3:.1f} ms",
                 f"{t_hv / t_lg:.2f}x loss+grad of 10",
                 f"{t_thv / t_hv:.2f}x vs torch.func jvp of grad ({t_thv * 1e3:.1f} ms)"])
    table = common.markdown_table(["case", "precision", "time", "throughput", "peer"], rows)
    body = f"GPU: {name}\n\n{table}"
    print(body)
    if not args.no_append:
        common.append_results("bench_gpu", body, [torch])


if __name__ == "__main__":
    main()
