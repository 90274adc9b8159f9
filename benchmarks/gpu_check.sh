#!/usr/bin/env bash
# The GPU check, in one go on a machine with an NVIDIA GPU, nvcc, CMake and a python3
# with PyTorch (whose nvidia-cublas package provides cuBLAS): build the engine with
# the CUDA backend, run the GPU tests against the CPU engine, compute-sanitizer
# memcheck on a small case, and the GPU benchmark. Python packages missing there
# (scipy-openblas32, pybind11, pytest and its needs) can be given as wheels in .whl/.
# Everything it prints also goes to ${OUT:-/tmp}/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
exec > >(tee "$OUT/gpu_check.log") 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/lt-site .whl/*.whl
  export PYTHONPATH=/tmp/lt-site${PYTHONPATH:+:$PYTHONPATH}
fi
cublas=$(python3 - <<'PY'
import glob, os, site
roots = site.getsitepackages() + [os.environ.get("PYTHONPATH", "").split(":")[0], "/usr/local/cuda"]
for r in roots:
    for h in glob.glob(os.path.join(r, "nvidia", "*", "include", "cublas_v2.h")) + \
             glob.glob(os.path.join(r, "nvidia", "cublas", "include", "cublas_v2.h")) + \
             glob.glob(os.path.join(r, "include", "cublas_v2.h")):
        print(os.path.dirname(os.path.dirname(h))); raise SystemExit
PY
)
echo "cuBLAS: ${cublas:-not found}"
cmake -S . -B build/gpu -G Ninja -DPython_EXECUTABLE="$(command -v python3)" \
      -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DLOSSTOPO_PYTHON=ON \
      -DLOSSTOPO_CUDA=ON -DLOSSTOPO_CUBLAS_ROOT="$cublas" -DCMAKE_CUDA_ARCHITECTURES="80;90" \
  && cmake --build build/gpu -j 16 || exit 1
rm -rf /tmp/lt-pkg && mkdir -p /tmp/lt-pkg && cp -r python/losstopo /tmp/lt-pkg/ \
  && cp build/gpu/_core*.so /tmp/lt-pkg/losstopo/
export PYTHONPATH=/tmp/lt-pkg${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH="$cublas/lib:${LD_LIBRARY_PATH:-}"
python3 -c "import losstopo; print('cuda_available:', losstopo.cuda_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_landscape.py 2>&1 | tail -15
echo "== compute-sanitizer memcheck"
compute-sanitizer --tool memcheck --error-exitcode 3 python3 -c "
import numpy as np, losstopo
net = losstopo.MLP([20, 8, 6, 3]); rng = np.random.default_rng(0)
ls = losstopo.Landscape(net, rng.random((100, 20)), rng.integers(0, 3, 100), device='cuda', chunk=30)
print(ls.loss_and_grad(net.init(3))[0])
print(ls.hessian_vector(net.init(1)[0], net.init(3, seed=1))[:, :3])" 2>&1 | tail -5
echo "== benchmark"
PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py
