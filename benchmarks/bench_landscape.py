"""Loss-and-gradient throughput of the batched engine against JAX and torch.func.

Throughput is counted as 6 x N x weights x P FLOP per call (forward plus backward,
the usual convention), and set beside numpy's large-GEMM rate as the machine's
ceiling. Peers run in the same process, on the same data, when installed.

    python benchmarks/bench_landscape.py [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:
    jax = None
try:
    import torch
    from torch import func as tfunc
except ImportError:
    torch = None

CASES = {
    # name: (network, N, P, dtype)
    "a": ("fcp", 50_000, 50, "float32"),
    "a64": ("fcp", 50_000, 50, "float64"),
    "b": ("autoencoder", 10_000, 50, "float32"),
    "c": ("small", 2_000, 50, "float32"),
    "d": ("fcp", 50_000, 1, "float32"),
}


def network(name):
    if name == "fcp":
        return losstopo.fcp()
    if name == "autoencoder":
        return losstopo.autoencoder()
    return losstopo.MLP([64, 50, 50, 10], activation="relu", bias=True)


def data(net, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, net.sizes[0])).astype(dtype)
    y = rng.integers(0, net.sizes[-1], n) if net.loss == "cross_entropy" else None
    return X, y


# ----------------------------------------------------------------- peers
def _act(xp, name):
    return {
        "relu": lambda z: xp.maximum(z, 0),
        "softplus": lambda z: xp.logaddexp(z, 0),
        "sigmoid": lambda z: 1 / (1 + xp.exp(-z)),
        "tanh": xp.tanh,
        "identity": lambda z: z,
    }[name]


def _layers(net):
    out, k = [], 0
    for (o, i), nb in net.layer_shapes():
        out.append((k, o, i, nb))
        k += o * i + nb
    return out


def jax_fn(net, X, y):
    Xj = jnp.asarray(X)
    yj = None if y is None else jnp.asarray(y)
    names = list(net.activations) + [net.output]
    shapes = _layers(net)

    def loss(theta):
        a = Xj
        for l, (k, o, i, nb) in enumerate(shapes):
            W = theta[k : k + o * i].reshape(o, i)
            a = a @ W.T
            if nb:
                a = a + theta[k + o * i : k + o * i + nb]
            a = _act(jnp, names[l])(a)
        if net.loss == "cross_entropy":
            lse = jax.scipy.special.logsumexp(a, axis=1)
            return jnp.mean(lse - jnp.take_along_axis(a, yj[:, None], axis=1)[:, 0])
        return jnp.mean((a - Xj) ** 2)

    f = jax.jit(jax.vmap(jax.value_and_grad(loss)))
    return lambda th: jax.block_until_ready(f(th))


def torch_fn(net, X, y):
    Xt = torch.from_numpy(X)
    yt = None if y is None else torch.from_numpy(y)
    names = list(net.activations) + [net.output]
    acts = {
        "relu": torch.relu,
        "softplus": torch.nn.functional.softplus,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "identity": lambda z: z,
    }
    shapes = _layers(net)

    def loss(theta):
        a = Xt
        for l, (k, o, i, nb) in enumerate(shapes):
            a = a @ theta[k : k + o * i].reshape(o, i).T
            if nb:
                a = a + theta[k + o * i : k + o * i + nb]
            a = acts[names[l]](a)
        if net.loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(a, yt)
        return torch.mean((a - Xt) ** 2)

    f = tfunc.vmap(tfunc.grad_and_value(loss))
    return lambda th: f(th)


# ------------------------------------------------------------------ main
def run_case(name, quick, results):
    netname, N, P, dtype = CASES[name]
    if quick:
        N = min(N, 5000)
    net = network(netname)
    X, y = data(net, N, dtype)
    theta = net.init(P, seed=1, dtype=dtype)
    flops = 6.0 * N * net.num_params * P
    repeat = 2 if quick else 3
    ls = losstopo.Landscape(net, X, y, dtype=dtype)
    t_ours = common.best_time(lambda: ls.loss_and_grad(theta), repeat=repeat)
    row = dict(case=name, net=netname, N=N, P=P, dtype=dtype, ours=t_ours)
    l_ours = ls.loss(theta)
    if jax is not None:
        f = jax_fn(net, X, y)
        tj = jnp.asarray(theta)
        lj = np.asarray(f(tj)[0])
        np.testing.assert_allclose(lj, l_ours, rtol=1e-3)
        row["jax"] = common.best_time(lambda: f(tj), repeat=repeat)
    if torch is not None:
        f = torch_fn(net, X, y)
        tt = torch.from_numpy(theta)
        with torch.no_grad():
            lt = f(tt)[1].numpy()
        np.testing.assert_allclose(lt, l_ours, rtol=1e-3)
        row["torch"] = common.best_time(lambda: f(tt), repeat=repeat)
    row["gflops_ours"] = flops / t_ours / 1e9
    results.append(row)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}),
          flush=True)


def peak_memory_case_a():
    """Peak resident memory of a fresh process running case (a) with losstopo alone.

    Read from VmHWM, which (unlike ru_maxrss) starts afresh at exec.
    """
    code = (
        "import numpy as np, losstopo\n"
        "net = losstopo.fcp(); rng = np.random.default_rng(0)\n"
        "X = rng.random((50000, 784), dtype=np.float32); y = rng.integers(0, 10, 50000)\n"
        "ls = losstopo.Landscape(net, X, y); del X\n"
        "ls.loss_and_grad(net.init(50))\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # MiB


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    ap.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = ap.parse_args(argv)
    ceil32 = common.gemm_ceiling(np.float32)
    ceil64 = common.gemm_ceiling(np.float64)
    print(f"numpy GEMM ceiling: fp32 {ceil32:.1f} GFLOP/s, fp64 {ceil64:.1f} GFLOP/s")
    results = []
    for name in args.cases.split(","):
        run_case(name, args.quick, results)
    mem = peak_memory_case_a()
    rows = []
    for r in results:
        ceil = ceil64 if r["dtype"] == "float64" else ceil32
        rows.append([
            r["case"], r["net"], r["N"], r["P"], r["dtype"],
            f"{r['ours'] * 1e3:.1f}",
            f"{r['gflops_ours']:.1f}",
            f"{100 * r['gflops_ours'] / ceil:.0f}%",
            f"{r['jax'] * 1e3:.1f}" if "jax" in r else "-",
            f"{r['jax'] / r['ours']:.2f}x" if "jax" in r else "-",
            f"{r['torch'] * 1e3:.1f}" if "torch" in r else "-",
            f"{r['torch'] / r['ours']:.2f}x" if "torch" in r else "-",
        ])
    table = common.markdown_table(
        ["case", "net", "N", "P", "dtype", "losstopo ms", "GFLOP/s", "of GEMM ceiling",
         "JAX ms", "speedup vs JAX", "torch.func ms", "speedup vs torch.func"],
        rows,
    )
    body = (
        f"GEMM ceiling (numpy, same process): fp32 {ceil32:.1f} GFLOP/s, fp64 {ceil64:.1f} "
        f"GFLOP/s. GFLOP/s counted as 6 x N x weights x P.  \n"
        f"Peak resident memory of case (a), losstopo alone in a fresh process: {mem:.0f} MiB"
        + (" (quick run: N capped at 5,000)" if args.quick else "")
        + f"\n\n{table}"
    )
    print(body)
    if not args.no_append:
        common.append_results("bench_landscape: loss and gradient throughput", body,
                              [m for m in (jax, torch) if m is not None])


if __name__ == "__main__":
    main()
