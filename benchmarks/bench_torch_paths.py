"""The PyTorch adapter's path costs (LeNet, LSTM) as multiples of one batched
loss+grad of the path's points, and the memory a call holds.

    python benchmarks/bench_torch_paths.py [--n 1000] [--points 20] [--compile] [--no-append]

For each network on N MNIST training images (synthetic pixels when MNIST is not
cached): one batched loss+grad of the M - 2 interior points of a path, one path step
(the same points, through the path finder) and one path measurement (the grid, the
straight line and the refined maxima), all timed in the same process; and the peak
resident memory of the process. With ``--compile``: the same loss+grad and path step
with ``TorchLandscape(compile=True)`` beside the eager ones, in the same process (the
first call, which compiles, timed apart).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from losstopo import torch_adapter  # noqa: E402
from losstopo.paths import MEASURE_GRID, make_path_batch, path_params, measure_grid  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    X, y, source = common.mnist_like(a.n)
    if a.compile:
        return compare_compile(X, y, source, a)
    rows = []
    for name in ("lenet", "lstm"):
        tl = torch_adapter.TorchLandscape(getattr(torch_adapter, name)(), X, y)
        A, B = tl.init(2, seed=0)
        params = path_params(10, a.points, 1e-4, "adam", 1e-3, 1, "sum", None,
                             "strong_wolfe")
        pb = make_path_batch(tl, A[None], B[None], params)
        C = np.random.default_rng(0).standard_normal((1, 10, tl.num_params)) * 1e-2
        W = pb.points(C.astype(pb.coeffs.dtype), pb.t[1:-1])[0]
        t_grad = common.best_time(lambda: tl.loss_and_grad(W), repeat=2)
        t_step = common.best_time(lambda: pb.objective(C.astype(pb.coeffs.dtype)), repeat=2)
        grid = measure_grid(tl)
        t_meas = common.best_time(lambda: pb.measure(C.astype(pb.coeffs.dtype), [], True,
                                                     **grid), repeat=1, warmup=0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append([name, f"{t_grad:.2f} s", f"{t_step:.2f} s ({t_step / t_grad:.2f}x)",
                     f"{t_meas:.2f} s ({t_meas / t_grad:.2f}x)",
                     f"{tl.sample_bytes() / 1024:.0f} KiB", f"{peak:.0f} MB"])
    table = common.markdown_table(
        ["network", f"loss+grad of {a.points - 2} points", "path step (x loss+grad)",
         "path measurement (x loss+grad)", "kept per sample", "peak RSS so far"], rows)
    body = (f"{source}, N = {a.n}, float32, M = {a.points} points, 10 modes; memory budget "
            f"per call {tl.memory_mb:g} MiB; a path's maximum located as "
            f"{measure_grid(tl)} (the native engine: {MEASURE_GRID}).\n\n"
            + table)
    print(body)
    if not a.no_append:
        import torch

        common.append_results("bench_torch_paths: PyTorch adapter path costs", body,
                              extra_modules=(torch,))


def step_and_grad(tl, points: int):
    """(loss+grad of the interior points, path step) callables on one path of ``tl``."""
    A, B = tl.init(2, seed=0)
    params = path_params(10, points, 1e-4, "adam", 1e-3, 1, "sum", None, "strong_wolfe")
    pb = make_path_batch(tl, A[None], B[None], params)
    C = (np.random.default_rng(0).standard_normal((1, 10, tl.num_params)) * 1e-2).astype(
        pb.coeffs.dtype)
    W = pb.points(C, pb.t[1:-1])[0]
    return (lambda: tl.loss_and_grad(W)), (lambda: pb.objective(C))


def compare_compile(X, y, source, a):
    import time

    import torch

    rows = []
    for name in ("lenet", "lstm"):
        module = getattr(torch_adapter, name)()
        eager = step_and_grad(torch_adapter.TorchLandscape(module, X, y), a.points)
        comp = step_and_grad(torch_adapter.TorchLandscape(module, X, y, compile=True),
                             a.points)
        t0 = time.perf_counter()
        comp[0]()  # compiles
        first = time.perf_counter() - t0
        times = [common.best_time(f, repeat=3) for f in (eager[0], comp[0], eager[1],
                                                         comp[1])]
        rows.append([name, f"{first:.0f} s", f"{times[0]:.2f} s",
                     f"{times[1]:.2f} s ({times[0] / times[1]:.2f}x)", f"{times[2]:.2f} s",
                     f"{times[3]:.2f} s ({times[2] / times[3]:.2f}x)"])
    table = common.markdown_table(
        ["network", "first compiled call", f"loss+grad of {a.points - 2} points, eager",
         "compiled (speedup)", "path step, eager", "compiled (speedup)"], rows)
    body = (f"{source}, N = {a.n}, float32, M = {a.points} points, 10 modes; "
            f"torch {torch.__version__}, torch.compile defaults (inductor).\n\n" + table)
    print(body)
    if not a.no_append:
        common.append_results("bench_torch_paths --compile: torch.compile of the adapter's "
                              "passes", body, extra_modules=(torch,))


if __name__ == "__main__":
    main()
