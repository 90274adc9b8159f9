#!/usr/bin/env bash
# The first-layer microbenchmark (benchmarks/cpp/sparse_first_layer.cpp) on MNIST's
# training images and on random inputs of given densities. Needs the project's virtual
# environment (.venv, for the BLAS and MNIST's cached copy; it downloads MNIST once
# if no copy is cached). Arguments go to the benchmark after the data options, e.g.
#   bash benchmarks/cpp/run_sparse.sh --rows 10000 --p 1,12,50 --reps 3
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
build=build/bench
cmake -S . -B "$build" -DPython_EXECUTABLE="$PWD/$py" -DLOSSTOPO_PYTHON=OFF \
      -DLOSSTOPO_BUILD_BENCHMARKS=ON -DLOSSTOPO_CUDA=OFF -DLOSSTOPO_INSTALL=OFF >/dev/null
cmake --build "$build" -j 2 --target sparse_first_layer >/dev/null
data="$build/mnist_train.f32"
if [ ! -s "$data" ]; then
  "$py" - "$data" <<'PY'
import sys
import numpy as np
import losstopo.datasets as ds
x = np.ascontiguousarray(ds.mnist().train[0], dtype=np.float32)
x.tofile(sys.argv[1])
print(f"MNIST training images {x.shape}, {np.count_nonzero(x) / x.size:.1%} nonzero",
      file=sys.stderr)
PY
fi
grep -m1 "model name" /proc/cpuinfo || true
# MNIST's rows, then random inputs of these densities, in one run.
"$build/sparse_first_layer" --data "$data" --cols 784 --density 0.05,0.1,0.19,0.3,0.5 "$@"
