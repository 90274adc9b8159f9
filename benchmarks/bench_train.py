"""Training speed: SGD populations and L-BFGS against PyTorch, batched minimize
against scipy, each measured in the same process.

    python benchmarks/bench_train.py [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.optimize as so

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import losstopo  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def torch_fcp():
    from torch import nn

    return nn.Sequential(nn.Linear(784, 50, bias=False), nn.ReLU(), nn.Linear(50, 50, bias=False),
                         nn.ReLU(), nn.Linear(50, 10, bias=False))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ------------------------------------------------------------------- (i) SGD
def bench_sgd(X, y, rows):
    net = losstopo.fcp()
    kw = dict(method="sgd", epochs=1, lr=0.1, batch_size=64, progress=False)
    ls = losstopo.Landscape(net, X, y)
    res = {}
    for label, R, shared in (("R=1", 1, False), ("R=16", 16, False),
                             ("R=16 shared order", 16, True)):
        ens = losstopo.train(net, ls, runs=R, shared_order=shared, **kw)
        res[label] = (ens.meta["step_seconds"], R)  # the steps alone, as in the torch loop
    if torch is not None:
        model = torch_fcp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()

        def epoch():
            perm = torch.randperm(len(Xt))
            for k in range(0, len(Xt), 64):
                idx = perm[k:k + 64]
                opt.zero_grad()
                loss = lossf(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        epoch()  # warm up
        t, _ = timed(epoch)
        res["torch"] = (t, 1)
    base = res.get("torch", (None, 1))[0]
    for label, (t, R) in res.items():
        if label == "torch":
            continue
        per_net = t / R
        rows.append(["(i) SGD epoch, FCP, N=%d, batch 64" % len(X), f"losstopo {label}",
                     f"{t:.2f} s", f"{per_net:.3f} s/net",
                     f"{base / per_net:.2f}x" if base else "-"])
    if base:
        rows.append(["", "torch.optim.SGD loop, 1 net", f"{base:.2f} s", f"{base:.3f} s/net",
                     "1.00x"])


# ----------------------------------------------------------------- (ii) L-BFGS
def bench_lbfgs(X, y, rows, iters):
    net = losstopo.fcp()
    ls = losstopo.Landscape(net, X, y)
    theta0 = net.init(1, seed=0)
    out = {}
    for search in ("golden", "strong_wolfe"):
        t, res = timed(lambda: losstopo.minimize(ls, theta0[0], line_search=search,
                                                 max_iter=iters, gtol=0.0))
        out[search] = (t / max(res.nit, 1), float(res.fun), res.nit, res.nfev)
    if torch is not None:
        model = torch_fcp()
        torch.nn.utils.vector_to_parameters(torch.from_numpy(theta0[0].copy()),
                                            model.parameters())
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=iters, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=0,
                                tolerance_change=0)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()
        nfev = [0]

        def closure():
            nfev[0] += 1
            opt.zero_grad()
            loss = lossf(model(Xt), yt)
            loss.backward()
            return loss

        t, _ = timed(lambda: opt.step(closure))
        n_iter = opt.state[opt._params[0]]["n_iter"]
        with torch.no_grad():
            final = float(lossf(model(Xt), yt))
        out["torch"] = (t / n_iter, final, n_iter, nfev[0])
    # A population: every line-search round of all runs is one batched call.
    R = 8
    ens = losstopo.train(net, ls, method="lbfgs", runs=R, epochs=iters, progress=False)
    tpi_pop = ens.meta["step_seconds"] / (R * iters)
    out["population"] = (tpi_pop, float(np.mean(ens.train_loss[:, -1])), iters, -1)
    base = out.get("torch", (None,))[0]
    for label, (tpi, f, nit, nfev) in out.items():
        name = {"golden": "losstopo L-BFGS golden", "strong_wolfe": "losstopo L-BFGS strong-Wolfe",
                "torch": "torch.optim.LBFGS strong_wolfe",
                "population": f"losstopo L-BFGS golden, population of {R}, per network"}[label]
        result = (f"loss {f:.4f} ({nit} it, {nfev} evals)" if nfev >= 0
                  else f"mean loss {f:.4f} ({nit} it)")
        rows.append([f"(ii) L-BFGS, FCP, N={len(X)}, {iters} it", name,
                     f"{tpi * 1e3:.0f} ms/it", result, f"{base / tpi:.2f}x" if base else "-"])


# ------------------------------------------------------- (iii) batched minimize
def rosen_batch(X):
    a, b = X[:, :-1], X[:, 1:]
    f = np.sum(100.0 * (b - a * a) ** 2 + (1 - a) ** 2, axis=1)
    g = np.zeros_like(X)
    g[:, :-1] = -400.0 * a * (b - a * a) - 2 * (1 - a)
    g[:, 1:] += 200.0 * (b - a * a)
    return f, g


def bench_minimize(rows, R=64, dim=10):
    X0 = np.random.default_rng(0).uniform(-2, 2, (R, dim))
    t_ours = {}
    for search in ("strong_wolfe", "golden"):
        t, res = timed(lambda: losstopo.minimize(rosen_batch, X0, line_search=search,
                                                 max_iter=5000, gtol=1e-6))
        t_ours[search] = (t, res)
    t_sc, ref = timed(lambda: [so.minimize(so.rosen, x, jac=so.rosen_der, method="L-BFGS-B",
                                           options=dict(maxiter=5000, gtol=1e-6)) for x in X0])
    f_ref = np.array([r.fun for r in ref])
    for search, (t, res) in t_ours.items():
        same = np.mean(np.abs(res.fun - f_ref) < 1e-4)
        rows.append([f"(iii) {R} Rosenbrock-{dim} problems", f"losstopo batched, {search}",
                     f"{t * 1e3:.0f} ms", f"same minimum as scipy: {100 * same:.0f}%",
                     f"{t_sc / t:.2f}x"])
    rows.append(["", f"scipy L-BFGS-B x {R} calls", f"{t_sc * 1e3:.0f} ms", "", "1.00x"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args(argv)
    n = 5000 if args.quick else 50_000
    X, y, source = common.mnist_like(n)
    rows = []
    bench_sgd(X, y, rows)
    bench_lbfgs(X, y, rows, iters=5 if args.quick else 20)
    bench_minimize(rows)
    table = common.markdown_table(["case", "method", "time", "result", "speedup vs peer"], rows)
    body = f"Data: {source}, N = {n}. Speedups are per network against the peer's row.\n\n{table}"
    print(body)
    if not args.no_append:
        common.append_results("bench_train: SGD, L-BFGS and batched minimize", body,
                              [m for m in (torch,) if m is not None])


if __name__ == "__main__":
    main()
