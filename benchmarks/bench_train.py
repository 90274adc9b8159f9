"""Training speed: SGD populations and L-BFGS against PyTorch, batched minimize
against scipy: the package's suite losstopo.bench.train (also `losstopo bench train`),
logged in RESULTS.md.

    python benchmarks/bench_train.py [--quick] [--no-append]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from losstopo.bench import train  # noqa: E402


def main(argv=None):
    args = common.suite_parser(__doc__).parse_args(argv)
    result = train.run("quick" if args.quick else "full")
    common.report_suite("bench_train: SGD, L-BFGS and batched minimize", result,
                        append=not args.no_append)


if __name__ == "__main__":
    main()
