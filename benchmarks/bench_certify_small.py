"""How often certify() proves a barrier on a small network, setting by setting.

    python benchmarks/bench_certify_small.py [--pairs 7] [--no-append]

The network is the 2-3-1 tanh network with weight decay of tests/test_saddles.py
(float64, exact Hessian-vector products), its minima from independent starts (scipy's
L-BFGS-B on the NumPy reference); consecutive minima make the pairs, each certified
from the straight line. Between copies of one minimum (48 symmetric copies) and
other local minima, the way passes several intermediate minima and saddles, which
makes it a hard case for every piece of certify: the band's climbing image, the saddle
search from it, the descents' basin test and the count of minima allowed. Each row
changes one default, ending at today's defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import common  # noqa: E402
from test_saddles import _WeightDecay  # noqa: E402

import losstopo.saddles as saddles  # noqa: E402

SETTINGS = (
    ("L-BFGS climbing, max_minima 4, barrier_tol 1e-3 (the defaults before)",
     dict(climb_method="lbfgs", max_minima=4), 1e-3),
    ("FIRE in both phases", dict(neb_method="fire", climb_method="fire", max_minima=4), 1e-3),
    ("FIRE climbing", dict(climb_method="fire", max_minima=4), 1e-3),
    ("FIRE climbing, max_minima 8", dict(climb_method="fire", max_minima=8), 1e-3),
    ("FIRE climbing, max_minima 8, barrier_tol 1e-5 (the defaults now)",
     dict(climb_method="fire", max_minima=8), 1e-5),
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    net = _WeightDecay()
    m = net.minima(args.pairs + 1)
    rows = []
    default_tol = saddles.BARRIER_TOL
    try:
        for name, kw, tol in SETTINGS:
            saddles.BARRIER_TOL = tol
            t = time.perf_counter()
            got = [saddles.certify(net, (m[i], m[i + 1]), search_iters=1500, **kw)
                   for i in range(args.pairs)]
            sec = time.perf_counter() - t
            certified = sum(c.status == "certified" for c in got)
            search = sum("saddle search did not" in c.reason for c in got)
            joins = sum("does not join" in c.reason for c in got)
            rows.append([name, f"{certified} of {args.pairs}", str(search), str(joins),
                         " ".join(f"{c.status.split()[0]}({len(c.minima)})" for c in got),
                         f"{sec:.1f} s"])
            print(rows[-1], flush=True)
    finally:
        saddles.BARRIER_TOL = default_tol
    table = common.markdown_table(
        ["setting", "certified", "searches not converged", "saddles not joining their ends",
         "per pair: status (intermediate minima)", "time"], rows)
    body = (f"2-3-1 tanh network with weight decay 1e-3 (tests/test_saddles.py), float64; "
            f"{args.pairs} pairs of consecutive minima from independent starts, certified "
            "from the straight line with search_iters 1500.\n\n" + table + "\n")
    print(body)
    if not args.no_append:
        common.append_results("bench_certify_small: certify on a small network, setting "
                              "by setting", body)


if __name__ == "__main__":
    main()
