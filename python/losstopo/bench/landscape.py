"""Suite "landscape": one batched loss and gradient of P parameter vectors over N
samples, losstopo against JAX (jit of vmap of value_and_grad) and torch.func (vmap of
grad_and_value) on the same data in the same process, beside numpy's GEMM rate as the
machine's ceiling. Throughput is counted as 6 x N x weights x P FLOP per call (forward
plus backward, the usual convention)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np

from ..progress import Progress
from . import preset
from .peers import load, torch_threads
from .table import ratio
from .timing import best_time, gemm_ceiling

TITLE = "one batched loss and gradient, against JAX and torch.func"

CASES = {
    # name: (network, N, P, dtype)
    "a": ("fcp", 50_000, 50, "float32"),
    "a64": ("fcp", 50_000, 50, "float64"),
    "b": ("autoencoder", 10_000, 50, "float32"),
    "c": ("small", 2_000, 50, "float32"),
    "d": ("fcp", 50_000, 1, "float32"),
}

#: N and P capped per preset; timing repeats; the side of numpy's GEMM; whether the
#: peak memory of a fresh process is measured.
SIZES = {
    "full": dict(n_max=None, p_max=None, repeat=3, gemm_n=3072, memory=True),
    "quick": dict(n_max=2_000, p_max=None, repeat=2, gemm_n=2048, memory=True),
    "tiny": dict(n_max=64, p_max=4, repeat=1, gemm_n=64, memory=False),
}


def network(name):
    import losstopo

    if name == "fcp":
        return losstopo.fcp()
    if name == "autoencoder":
        return losstopo.autoencoder()
    return losstopo.MLP([64, 50, 50, 10], activation="relu", bias=True)


def data(net, n, dtype, seed=0):
    """Random inputs in [0, 1) and labels (the timings do not depend on the values)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, net.sizes[0])).astype(dtype)
    y = rng.integers(0, net.sizes[-1], n) if net.loss == "cross_entropy" else None
    return X, y


def _layers(net):
    """(offset, out, in, bias length) of each layer in the flat parameter vector."""
    out, k = [], 0
    for (o, i), nb in net.layer_shapes():
        out.append((k, o, i, nb))
        k += o * i + nb
    return out


def jax_fn(net, X, y):
    """JAX: jit(vmap(value_and_grad(loss))) over the rows of theta."""
    import jax
    import jax.numpy as jnp
    import jax.scipy.special

    Xj = jnp.asarray(X)
    yj = None if y is None else jnp.asarray(y)
    names = list(net.activations) + [net.output]
    acts = {
        "relu": lambda z: jnp.maximum(z, 0),
        "softplus": lambda z: jnp.logaddexp(z, 0),
        "sigmoid": lambda z: 1 / (1 + jnp.exp(-z)),
        "tanh": jnp.tanh,
        "identity": lambda z: z,
    }
    shapes = _layers(net)

    def loss(theta):
        a = _forward(Xj, theta, shapes, names, acts)
        if net.loss == "cross_entropy":
            lse = jax.scipy.special.logsumexp(a, axis=1)
            return jnp.mean(lse - jnp.take_along_axis(a, yj[:, None], axis=1)[:, 0])
        return jnp.mean((a - Xj) ** 2)

    f = jax.jit(jax.vmap(jax.value_and_grad(loss)))
    return lambda th: jax.block_until_ready(f(th))


def _forward(a, theta, shapes, names, acts):
    """The network's output for inputs ``a`` at one flat theta, in whichever array
    framework ``a``, ``theta`` and the activations ``acts`` belong to."""
    for l, (k, o, i, nb) in enumerate(shapes):
        a = a @ theta[k : k + o * i].reshape(o, i).T
        if nb:
            a = a + theta[k + o * i : k + o * i + nb]
        a = acts[names[l]](a)
    return a


def torch_loss(net, X, y):
    """torch: the network's mean loss over (X, y) as a function of one flat theta."""
    import torch

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
        a = _forward(Xt, theta, shapes, names, acts)
        if net.loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(a, yt)
        return torch.mean((a - Xt) ** 2)

    return loss


def torch_fn(net, X, y):
    """torch.func: vmap(grad_and_value(loss)) over the rows of theta."""
    from torch import func as tfunc

    return tfunc.vmap(tfunc.grad_and_value(torch_loss(net, X, y)))


def _agree(peer, case, theirs, ours):
    """The peer computes the same losses, or the comparison is void."""
    if not np.allclose(theirs, ours, rtol=1e-3, atol=0.0):
        err = float(np.max(np.abs(theirs - ours) / np.abs(ours)))
        raise RuntimeError(f"landscape case {case}: {peer}'s losses differ from losstopo's "
                           f"(largest relative difference {err:.3g}); timings not compared")


def peak_memory(case, n, threads):
    """Peak resident memory (MiB) of a fresh process running ``case`` with losstopo
    alone, from VmHWM (which, unlike ru_maxrss, starts afresh at exec); None where
    there is no /proc."""
    if not os.path.exists("/proc/self/status"):
        return None
    netname, _, P, dtype = CASES[case]
    code = (
        "import sys, numpy as np\n"
        "from losstopo.bench.landscape import network, data\n"
        "import losstopo\n"
        "net = network(sys.argv[1]); n, P, dtype = int(sys.argv[2]), int(sys.argv[3]), "
        "sys.argv[4]\n"
        "threads = int(sys.argv[5]) or None\n"
        "X, y = data(net, n, dtype)\n"
        "ls = losstopo.Landscape(net, X, y, dtype=dtype, threads=threads); del X\n"
        "ls.loss_and_grad(net.init(P, seed=1, dtype=dtype))\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, netname, str(n), str(P), dtype,
                          str(threads or 0)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"landscape: the memory measurement of case {case} failed: "
                           f"{out.stderr.strip()[-1000:]}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


@contextlib.contextmanager
def jax_x64(jax):
    """JAX's 64-bit mode on inside the block (case a64 runs in float64), as it was after."""
    if jax is None:
        yield
        return
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def time_case(name, sz, threads, jax, torch):
    """Seconds of one loss and gradient of case ``name`` for losstopo and each peer given
    (not None), after checking that the peers compute the same losses."""
    import losstopo

    netname, N, P, dtype = CASES[name]
    N = min(N, sz["n_max"] or N)
    P = min(P, sz["p_max"] or P)
    net = network(netname)
    X, y = data(net, N, dtype)
    theta = net.init(P, seed=1, dtype=dtype)
    ls = losstopo.Landscape(net, X, y, dtype=dtype, threads=threads)
    seconds = {"losstopo": best_time(lambda: ls.loss_and_grad(theta), repeat=sz["repeat"])}
    ours = ls.loss(theta)
    if jax is not None:
        fj = jax_fn(net, X, y)
        tj = jax.numpy.asarray(theta)
        _agree("JAX", name, np.asarray(fj(tj)[0]), ours)
        seconds["jax"] = best_time(lambda: fj(tj), repeat=sz["repeat"])
    if torch is not None:
        ft = torch_fn(net, X, y)
        tt = torch.from_numpy(theta)
        with torch.no_grad():
            _agree("torch.func", name, ft(tt)[1].numpy(), ours)
        seconds["torch"] = best_time(lambda: ft(tt), repeat=sz["repeat"])
    flop = 6.0 * N * net.num_params * P
    return dict(case=name, net=netname, N=N, P=P, dtype=dtype, weights=net.num_params,
                flop=flop, seconds=seconds,
                gflops={k: flop / t / 1e9 for k, t in seconds.items()},
                ratio={k: t / seconds["losstopo"] for k, t in seconds.items()
                       if k != "losstopo"})


def row(record, status):
    """The table row of one case; an absent peer's columns say why."""
    r = record
    cells = [r["case"], r["net"], r["N"], r["P"], r["dtype"],
             f"{r['seconds']['losstopo'] * 1e3:.1f}", f"{r['gflops']['losstopo']:.1f}",
             f"{100 * r['of_gemm_ceiling']:.0f}%"]
    for peer in ("jax", "torch"):
        if peer in r["seconds"]:
            cells += [f"{r['seconds'][peer] * 1e3:.1f}", ratio(r["ratio"][peer])]
        else:
            cells += [status[peer], "-"]
    return cells


def run(size="full", threads=None, progress=True, cases=None) -> dict:
    """Times every case of ``cases`` (default all of :data:`CASES`) for losstopo and the
    installed peers; returns the suite's numbers, notes and table."""
    sz = preset(SIZES, size)
    cases = list(CASES) if cases is None else list(cases)
    for c in cases:
        if c not in CASES:
            raise ValueError(f"cases: expected names from {list(CASES)}, got {c!r}")
    jax, jax_status = load("jax")
    torch, torch_status = load("torch")
    status = {"jax": jax_status, "torch": torch_status}
    bar = Progress(len(cases) + 1 + sz["memory"], "bench landscape", enabled=progress)
    bar.update(0, postfix="numpy GEMM ceiling")
    ceiling = {dt: gemm_ceiling(np.dtype(dt), n=sz["gemm_n"], repeat=sz["repeat"])
               for dt in ("float32", "float64")}
    bar.update(1)
    records = []
    with jax_x64(jax), torch_threads(torch, threads):
        for name in cases:
            bar.update(0, postfix=f"case {name}")
            r = time_case(name, sz, threads, jax, torch)
            r["of_gemm_ceiling"] = r["gflops"]["losstopo"] / ceiling[r["dtype"]]
            records.append(r)
            bar.update(1)
    mem_case = "a" if "a" in cases else cases[0]
    mem_n = min(CASES[mem_case][1], sz["n_max"] or CASES[mem_case][1])
    mem = None
    if sz["memory"]:
        bar.update(0, postfix=f"peak memory of case {mem_case}")
        mem = peak_memory(mem_case, mem_n, threads)
        bar.update(1)
    bar.close()
    notes = [
        f"GEMM ceiling (numpy, same process, {sz['gemm_n']}^2): fp32 "
        f"{ceiling['float32']:.1f} GFLOP/s, fp64 {ceiling['float64']:.1f} GFLOP/s. "
        "GFLOP/s counted as 6 x N x weights x P; random inputs.  ",
        f"Peak resident memory of case ({mem_case}) with N = {mem_n}, losstopo alone in a "
        "fresh process: " + (f"{mem:.0f} MiB" if mem is not None
                             else "not measured (no /proc on this system)" if sz["memory"]
                             else f"not measured at {size} sizes"),
    ]
    if sz["n_max"] or sz["p_max"]:
        notes[-1] += "  \n" + f"{size.capitalize()} sizes: N capped at {sz['n_max']}" + (
            f", P at {sz['p_max']}" if sz["p_max"] else "") + "."
    return {
        "suite": "landscape",
        "title": TITLE,
        "size": size,
        "sizes": sz,
        "data": "random",
        "versions": status,
        "gemm_ceiling_gflops": ceiling,
        "peak_memory_mib": {"case": mem_case, "N": mem_n, "mib": mem},
        "cases": records,
        "notes": notes,
        "headers": ["case", "net", "N", "P", "dtype", "losstopo ms", "GFLOP/s",
                    "of GEMM ceiling", "JAX ms", "speedup vs JAX", "torch.func ms",
                    "speedup vs torch.func"],
        "rows": [row(r, status) for r in records],
    }
