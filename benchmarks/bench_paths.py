"""Cost of one FourierPathFinder step on FCP against the authors' per-point PyTorch
approach and torch.func vmap over the points: the package's suite losstopo.bench.paths
(also `losstopo bench paths`), logged in RESULTS.md.

    python benchmarks/bench_paths.py [--quick] [--no-append]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from losstopo.bench import paths  # noqa: E402


def main(argv=None):
    args = common.suite_parser(__doc__).parse_args(argv)
    result = paths.run("quick" if args.quick else "full")
    common.report_suite("bench_paths: one FourierPathFinder step", result,
                        append=not args.no_append)


if __name__ == "__main__":
    main()
