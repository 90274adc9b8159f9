"""Suite "train": (i) an SGD epoch of populations against a torch.optim.SGD loop,
(ii) full-batch L-BFGS iterations against torch.optim.LBFGS, (iii) a batch of small
problems in one batched ``minimize`` against scipy's L-BFGS-B called per problem;
FCP on MNIST (when cached) or synthetic data, in the same process."""

from __future__ import annotations

import numpy as np

from ..progress import Progress
from . import preset
from .data import describe, mnist_like
from .peers import load, torch_threads
from .table import ratio
from .timing import timed

TITLE = "SGD, L-BFGS and batched minimize, against torch.optim and scipy"

#: N; the SGD population; L-BFGS iterations and population; Rosenbrock problems.
SIZES = {
    "full": dict(n=50_000, sgd_runs=16, lbfgs_iters=20, lbfgs_runs=8, problems=64, dim=10),
    "quick": dict(n=5_000, sgd_runs=16, lbfgs_iters=5, lbfgs_runs=8, problems=64, dim=10),
    "tiny": dict(n=256, sgd_runs=4, lbfgs_iters=2, lbfgs_runs=2, problems=4, dim=4),
}
BATCH = 64


def torch_fcp():
    from torch import nn

    return nn.Sequential(nn.Linear(784, 50, bias=False), nn.ReLU(), nn.Linear(50, 50, bias=False),
                         nn.ReLU(), nn.Linear(50, 10, bias=False))


def bench_sgd(ls, X, y, runs, torch):
    """(i) One SGD epoch, batch 64: losstopo with 1 and ``runs`` networks (own and shared
    minibatch order), the steps alone; a torch.optim.SGD loop over one network."""
    import losstopo

    kw = dict(method="sgd", epochs=1, lr=0.1, batch_size=BATCH, progress=False)
    out = []
    for label, R, shared in (("R=1", 1, False), (f"R={runs}", runs, False),
                             (f"R={runs} shared order", runs, True)):
        ens = losstopo.train(ls.net, ls, runs=R, shared_order=shared, **kw)
        t = ens.meta["step_seconds"]  # the steps alone, as in the torch loop
        out.append(dict(case="sgd_epoch", method=f"losstopo {label}", implementation="losstopo",
                        runs=R, shared_order=shared, seconds=t, seconds_per_network=t / R))
    if torch is not None:
        model = torch_fcp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()

        def epoch():
            perm = torch.randperm(len(Xt))
            for k in range(0, len(Xt), BATCH):
                idx = perm[k:k + BATCH]
                opt.zero_grad()
                loss = lossf(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        epoch()  # warm up
        t, _ = timed(epoch)
        out.append(dict(case="sgd_epoch", method="torch.optim.SGD loop", implementation="torch",
                        runs=1, seconds=t, seconds_per_network=t))
        for r in out[:-1]:
            r["ratio"] = {"torch": t / r["seconds_per_network"]}
    return out


def bench_lbfgs(ls, X, y, iters, runs, torch):
    """(ii) Full-batch L-BFGS from one start: golden section and strong Wolfe, a
    population of ``runs`` (per network), and torch.optim.LBFGS (strong Wolfe)."""
    import losstopo

    net = ls.net
    theta0 = net.init(1, seed=0)
    out = []
    for search in ("golden", "strong_wolfe"):
        t, res = timed(lambda: losstopo.minimize(ls, theta0[0], line_search=search,
                                                 max_iter=iters, gtol=0.0))
        nit = max(int(res.nit), 1)
        out.append(dict(case="lbfgs", method=f"losstopo L-BFGS {search}",
                        implementation="losstopo", seconds=t, seconds_per_iteration=t / nit,
                        iterations=int(res.nit), evaluations=int(res.nfev),
                        loss=float(res.fun)))
    # A population: every line-search round of all runs is one batched call.
    ens = losstopo.train(net, ls, method="lbfgs", runs=runs, epochs=iters, progress=False)
    t = ens.meta["step_seconds"]
    out.append(dict(case="lbfgs", method=f"losstopo L-BFGS golden, population of {runs}",
                    implementation="losstopo", runs=runs, seconds=t,
                    seconds_per_iteration=t / (runs * iters), iterations=iters,
                    loss=float(np.mean(ens.train_loss[:, -1]))))
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
        out.append(dict(case="lbfgs", method="torch.optim.LBFGS strong_wolfe",
                        implementation="torch", seconds=t,
                        seconds_per_iteration=t / max(n_iter, 1), iterations=int(n_iter),
                        evaluations=nfev[0], loss=final))
        for r in out[:-1]:
            r["ratio"] = {"torch": out[-1]["seconds_per_iteration"] / r["seconds_per_iteration"]}
    return out


def rosen_batch(X):
    """The Rosenbrock function and its gradient for each row of X."""
    a, b = X[:, :-1], X[:, 1:]
    f = np.sum(100.0 * (b - a * a) ** 2 + (1 - a) ** 2, axis=1)
    g = np.zeros_like(X)
    g[:, :-1] = -400.0 * a * (b - a * a) - 2 * (1 - a)
    g[:, 1:] += 200.0 * (b - a * a)
    return f, g


def bench_minimize(problems, dim, scipy):
    """(iii) ``problems`` Rosenbrock problems of ``dim`` variables: one batched minimize
    per line search against scipy's L-BFGS-B called once per problem."""
    import losstopo

    so = scipy.optimize
    X0 = np.random.default_rng(0).uniform(-2, 2, (problems, dim))
    ours = {}
    for search in ("strong_wolfe", "golden"):
        ours[search] = timed(lambda: losstopo.minimize(rosen_batch, X0, line_search=search,
                                                       max_iter=5000, gtol=1e-6))
    t_sc, ref = timed(lambda: [so.minimize(so.rosen, x, jac=so.rosen_der, method="L-BFGS-B",
                                           options=dict(maxiter=5000, gtol=1e-6)) for x in X0])
    f_ref = np.array([r.fun for r in ref])
    out = []
    for search, (t, res) in ours.items():
        same = float(np.mean(np.abs(res.fun - f_ref) < 1e-4))
        out.append(dict(case="minimize", method=f"losstopo batched, {search}",
                        implementation="losstopo", problems=problems, dim=dim, seconds=t,
                        same_minimum_as_scipy=same, ratio={"scipy": t_sc / t}))
    out.append(dict(case="minimize", method=f"scipy L-BFGS-B x {problems} calls",
                    implementation="scipy", problems=problems, dim=dim, seconds=t_sc))
    return out


def _rows(n, iters, sgd, lbfgs, minimize, torch_status):
    rows = []
    sgd_case = f"(i) SGD epoch, FCP, N={n}, batch {BATCH}"
    peer = [r for r in sgd if r["implementation"] == "torch"]
    for r in sgd:
        if r["implementation"] == "losstopo":
            rows.append([sgd_case, r["method"], f"{r['seconds']:.2f} s",
                         f"{r['seconds_per_network']:.3f} s/net",
                         ratio(r.get("ratio", {}).get("torch"))])
    rows.append(["", "torch.optim.SGD loop, 1 net"]
                + ([f"{peer[0]['seconds']:.2f} s", f"{peer[0]['seconds']:.3f} s/net", "1.00x"]
                   if peer else [torch_status, "", "-"]))
    lb_case = f"(ii) L-BFGS, FCP, N={n}, {iters} it"
    have_torch = False
    for r in lbfgs:
        if r["implementation"] == "torch":
            have_torch = True
        per_net = ", per network" if "runs" in r else ""
        result = (f"mean loss {r['loss']:.4f} ({r['iterations']} it)" if "runs" in r
                  else f"loss {r['loss']:.4f} ({r['iterations']} it, {r['evaluations']} evals)")
        speedup = ("1.00x" if r["implementation"] == "torch"
                   else ratio(r.get("ratio", {}).get("torch")))
        rows.append([lb_case, r["method"] + per_net,
                     f"{r['seconds_per_iteration'] * 1e3:.0f} ms/it", result, speedup])
    if not have_torch:
        rows.append([lb_case, "torch.optim.LBFGS strong_wolfe", torch_status, "", "-"])
    for r in minimize:
        if r["implementation"] == "losstopo":
            rows.append([f"(iii) {r['problems']} Rosenbrock-{r['dim']} problems", r["method"],
                         f"{r['seconds'] * 1e3:.0f} ms",
                         f"same minimum as scipy: {100 * r['same_minimum_as_scipy']:.0f}%",
                         ratio(r["ratio"]["scipy"])])
        else:
            rows.append(["", r["method"], f"{r['seconds'] * 1e3:.0f} ms", "", "1.00x"])
    return rows


def run(size="full", threads=None, progress=True) -> dict:
    """Runs (i), (ii) and (iii); returns the suite's numbers, notes and table."""
    import losstopo

    sz = preset(SIZES, size)
    torch, torch_status = load("torch")
    scipy, scipy_status = load("scipy")
    if scipy is None:
        raise RuntimeError(f"scipy is {scipy_status}; losstopo needs it (pip install scipy)")
    bar = Progress(4, "bench train", enabled=progress)
    bar.update(0, postfix="data")
    X, y, source = mnist_like(sz["n"])
    ls = losstopo.Landscape(losstopo.fcp(), X, y, threads=threads)
    bar.update(1, postfix="(i) SGD")
    with torch_threads(torch, threads):
        sgd = bench_sgd(ls, X, y, sz["sgd_runs"], torch)
        bar.update(1, postfix="(ii) L-BFGS")
        lbfgs = bench_lbfgs(ls, X, y, sz["lbfgs_iters"], sz["lbfgs_runs"], torch)
    bar.update(1, postfix="(iii) minimize")
    minimize = bench_minimize(sz["problems"], sz["dim"], scipy)
    bar.update(1)
    bar.close()
    return {
        "suite": "train",
        "title": TITLE,
        "size": size,
        "sizes": sz,
        "data": source,
        "versions": {"torch": torch_status, "scipy": scipy_status},
        "cases": sgd + lbfgs + minimize,
        "notes": [describe(source, sz["n"]) + " Speedups are per network against the "
                  "peer's row."],
        "headers": ["case", "method", "time", "result", "speedup vs peer"],
        "rows": _rows(sz["n"], sz["lbfgs_iters"], sgd, lbfgs, minimize, torch_status),
    }
