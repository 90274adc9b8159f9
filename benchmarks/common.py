"""Shared helpers for the benchmarks: timing, the machine's description, and the
results log benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")


def best_time(fn, repeat=3, warmup=1):
    """Best wall-clock time of ``fn()`` in seconds over ``repeat`` runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def versions(*modules) -> str:
    out = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for m in modules:
        if m is not None:
            out.append(f"{m.__name__} {m.__version__}")
    return ", ".join(out)


def gemm_ceiling(dtype=np.float32, n=3072, repeat=3) -> float:
    """numpy's large square GEMM throughput in GFLOP/s: the machine's practical ceiling."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    t = best_time(lambda: a @ b, repeat=repeat)
    return 2.0 * n**3 / t / 1e9


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def append_results(title: str, body: str, extra_modules=()) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (
        f"\n## {title} ({stamp})\n\nMachine: {machine()}  \n"
        f"Software: {versions(*extra_modules)}\n\n{body}\n"
    )
    with open(RESULTS, "a") as f:
        f.write(text)
    print(f"appended to {RESULTS}")


def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def mnist_like(n, seed=0):
    """The first n MNIST training images when cached, else random MNIST-shaped data.

    Returns (X (n, 784) float32, y (n,) int, source name).
    """
    import losstopo

    try:
        X, y = losstopo.datasets.mnist(download=False, progress=False).train
        return X[:n], y[:n], "MNIST"
    except (FileNotFoundError, ConnectionError, ValueError):
        rng = np.random.default_rng(seed)
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n), "random"
