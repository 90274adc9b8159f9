"""Loss-and-gradient throughput of the batched engine against JAX and torch.func: the
package's suite losstopo.bench.landscape (also `losstopo bench landscape`), logged in
RESULTS.md.

    python benchmarks/bench_landscape.py [--quick] [--no-append] [--cases a,a64,b,c,d]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from losstopo.bench import landscape  # noqa: E402


def main(argv=None):
    ap = common.suite_parser(__doc__)
    ap.add_argument("--cases", default=",".join(landscape.CASES), help="comma-separated case names")
    args = ap.parse_args(argv)
    result = landscape.run("quick" if args.quick else "full", cases=args.cases.split(","))
    common.report_suite("bench_landscape: loss and gradient throughput", result,
                        append=not args.no_append)


if __name__ == "__main__":
    main()
