// CudaLandscape: the engine of cpp/src/landscape.cpp on a GPU. The dataset lives on
// the device; per chunk of samples the shared first layer is one cuBLAS product over
// all P vectors, the per-vector layers are strided-batched products, and small
// kernels do activations, losses, deltas and bias sums. Only theta goes in and the
// losses and gradients come out.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/cuda_landscape.hpp"

namespace losstopo {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": status " +
                             std::to_string(int(s)));
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  void resize(size_t m) {
    if (m <= n) return;
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    check(cudaMalloc(&ptr, sizeof(T) * std::max<size_t>(m, 1)), "cudaMalloc");
    n = m;
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

// Row-major C (m x n) = alpha op(A) op(B) + beta C, through column-major cuBLAS by
// swapping the operands.
cublasStatus_t gemm(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, float alpha,
                    const float* A, int lda, const float* B, int ldb, float beta, float* C,
                    int ldc) {
  return cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                     &alpha, B, ldb, A, lda, &beta, C, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, double alpha,
                    const double* A, int lda, const double* B, int ldb, double beta, double* C,
                    int ldc) {
  return cublasDgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                     &alpha, B, ldb, A, lda, &beta, C, ldc);
}
// The same for `count` problems with fixed strides between them.
cublasStatus_t gemm_batched(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, float alpha,
                            const float* A, int lda, long long sa, const float* B, int ldb,
                            long long sb, float beta, float* C, int ldc, long long sc,
                            int count) {
  return cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, sb,
                                   A, lda, sa, &beta, C, ldc, sc, count);
}
cublasStatus_t gemm_batched(cublasHandle_t h, bool ta, bool tb, int m, int n, int k,
                            double alpha, const double* A, int lda, long long sa,
                            const double* B, int ldb, long long sb, double beta, double* C,
                            int ldc, long long sc, int count) {
  return cublasDgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, sb,
                                   A, lda, sa, &beta, C, ldc, sc, count);
}

template <typename T>
__device__ T act_value(int act, T z) {
  switch (act) {
    case 1: return z > T(0) ? z : T(0);
    case 2: return z > T(0) ? z + log1p(exp(-z)) : log1p(exp(z));
    case 3: return tanh(z);
    case 4: return z >= T(0) ? T(1) / (T(1) + exp(-z)) : exp(z) / (T(1) + exp(z));
    default: return z;
  }
}

template <typename T>
__device__ T act_derivative(int act, T a) {  // through the output a = act(z)
  switch (act) {
    case 1: return a > T(0) ? T(1) : T(0);
    case 2: return -expm1(-a);
    case 3: return T(1) - a * a;
    case 4: return a * (T(1) - a);
    default: return T(1);
  }
}

// Block (rows x cols) at x with leading dimension ld, for `count` blocks `stride`
// apart: x += bias[block * bias_stride + col]; x = act(x).
template <typename T>
__global__ void bias_activate(T* x, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                              int count, const T* bias, int64_t bias_stride, int act) {
  const int64_t total = rows * cols * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
    T* v = x + b * stride + r * ld + c;
    T z = *v;
    if (bias) z += bias[b * bias_stride + c];
    *v = act_value(act, z);
  }
}

// delta *= act'(a), blockwise as above (delta and a share the layout).
template <typename T>
__global__ void times_derivative(T* delta, const T* a, int64_t rows, int64_t cols, int64_t ld,
                                 int64_t stride, int count, int act) {
  const int64_t total = rows * cols * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
    const int64_t o = b * stride + r * ld + c;
    delta[o] *= act_derivative(act, a[o]);
  }
}

// g[b * g_stride + c] += sum_r x[b * stride + r * ld + c]
template <typename T>
__global__ void column_sums(const T* x, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                            int count, T* g, int64_t g_stride) {
  const int64_t total = cols * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % cols, b = i / cols;
    T s = T(0);
    for (int64_t r = 0; r < rows; ++r) s += x[b * stride + r * ld + c];
    g[b * g_stride + c] += s;
  }
}

// One thread per (vector, sample): the loss of that sample, dLoss/dz of the output
// layer (scaled) into delta (same layout as out, may alias), and the counts.
template <typename T>
__global__ void output_loss(const T* out, int64_t ld, int64_t stride, int64_t rows, int k,
                            int count, const int32_t* labels, const T* target, int64_t ld_t,
                            T* delta, T scale, bool want_delta, int out_act, bool ce,
                            double* loss, double* correct) {
  const int64_t total = rows * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i % rows, b = i / rows;
    const T* o = out + b * stride + r * ld;
    T* d = delta ? delta + b * stride + r * ld : nullptr;
    double l = 0.0;
    if (ce) {
      const int y = labels[r];
      int arg = 0;
      T m = o[0];
      for (int j = 1; j < k; ++j)
        if (o[j] > m) { m = o[j]; arg = j; }
      double s = 0.0;
      for (int j = 0; j < k; ++j) s += exp(double(o[j] - m));
      const double lse = double(m) + log(s);
      l = lse - double(o[y]);
      if (arg == y) atomicAdd(&correct[b], 1.0);
      if (want_delta)
        for (int j = 0; j < k; ++j) {
          const T a = o[j];
          T p = T(exp(double(a) - lse));
          if (j == y) p -= T(1);
          d[j] = p * scale * act_derivative(out_act, a);
        }
    } else {
      const T* t = target + r * ld_t;
      for (int j = 0; j < k; ++j) {
        const T a = o[j], e = a - t[j];
        l += double(e) * double(e);
        if (want_delta) d[j] = T(2) * e * scale * act_derivative(out_act, a);
      }
    }
    atomicAdd(&loss[b], l);
  }
}

// a1 (rows, P*h1) holds the first layer's activations; dA (P, rows, h1) the
// gradients with respect to them. a1 becomes the deltas dA * act'(a1).
template <typename T>
__global__ void first_layer_deltas(T* a1, const T* dA, int64_t rows, int64_t h1, int P,
                                   int act) {
  const int64_t total = rows * h1 * P, width = h1 * P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % h1, r = (i / h1) % rows, p = i / (h1 * rows);
    T* v = a1 + r * width + p * h1 + j;
    *v = dA[i] * act_derivative(act, *v);
  }
}

template <typename T>
__global__ void gather_rows(const T* X, const int64_t* idx, int64_t rows, int64_t cols, T* out) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    out[i] = X[idx[r] * cols + c];
  }
}

__global__ void gather_labels(const int32_t* y, const int64_t* idx, int64_t rows, int32_t* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = y[idx[i]];
}

int code(Activation a) {
  switch (a) {
    case Activation::ReLU: return 1;
    case Activation::Softplus: return 2;
    case Activation::Tanh: return 3;
    case Activation::Sigmoid: return 4;
    default: return 0;
  }
}

dim3 grid_for(int64_t n) { return dim3(unsigned(std::min<int64_t>((n + 255) / 256, 4096))); }

}  // namespace

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

template <typename T>
struct CudaLandscape<T>::Impl {
  MLPSpec spec;
  int64_t n, D, chunk;
  int device;
  cublasHandle_t handle = nullptr;
  DeviceBuffer<T> X, targets, theta, grad, w1, b1, a1, tmp, xg, tg;
  DeviceBuffer<int32_t> labels, yg;
  DeviceBuffer<int64_t> idx;
  DeviceBuffer<double> loss, correct;
  std::vector<DeviceBuffer<T>> acts, deltas;
  bool has_targets = false;
};

template <typename T>
CudaLandscape<T>::CudaLandscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels,
                                const T* targets, int device, bool tf32, int64_t chunk)
    : impl_(std::make_unique<Impl>()) {
  spec.validate();
  Impl& m = *impl_;
  m.spec = std::move(spec);
  m.n = n;
  m.D = m.spec.num_params();
  m.device = device;
  m.chunk = chunk;
  const int d0 = m.spec.sizes.front(), dout = m.spec.sizes.back();
  if (n <= 0) throw std::invalid_argument("X: need at least one sample");
  if (m.spec.loss == Loss::CrossEntropy && !labels)
    throw std::invalid_argument("y: cross_entropy needs integer labels");
  for (int64_t i = 0; labels && i < n; ++i)
    if (labels[i] < 0 || labels[i] >= dout) throw std::invalid_argument("y: label out of range");
  if (m.spec.loss == Loss::MSE && !targets && dout != d0)
    throw std::invalid_argument("mse without targets needs sizes[-1] == sizes[0]");
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cublasCreate(&m.handle), "cublasCreate");
  if (tf32) check(cublasSetMathMode(m.handle, CUBLAS_TF32_TENSOR_OP_MATH), "cublasSetMathMode");
  m.X.resize(size_t(n) * d0);
  check(cudaMemcpy(m.X.ptr, X, sizeof(T) * n * d0, cudaMemcpyHostToDevice), "copy X");
  if (labels) {
    m.labels.resize(n);
    check(cudaMemcpy(m.labels.ptr, labels, sizeof(int32_t) * n, cudaMemcpyHostToDevice),
          "copy y");
  }
  if (targets) {
    m.has_targets = true;
    m.targets.resize(size_t(n) * dout);
    check(cudaMemcpy(m.targets.ptr, targets, sizeof(T) * n * dout, cudaMemcpyHostToDevice),
          "copy targets");
  }
  m.acts.resize(m.spec.num_layers());
  m.deltas.resize(m.spec.num_layers());
}

template <typename T>
CudaLandscape<T>::~CudaLandscape() {
  if (impl_ && impl_->handle) cublasDestroy(impl_->handle);
}

template <typename T>
int64_t CudaLandscape<T>::num_params() const { return impl_->D; }
template <typename T>
int64_t CudaLandscape<T>::num_samples() const { return impl_->n; }
template <typename T>
bool CudaLandscape<T>::classifier() const { return impl_->spec.loss == Loss::CrossEntropy; }

template <typename T>
void CudaLandscape<T>::evaluate(const T* theta, int64_t P, T* loss_out, T* grad_out, T* acc_out,
                                const int64_t* samples, int64_t n_samples) const {
  Impl& m = *impl_;
  const MLPSpec& s = m.spec;
  if (P < 1) throw std::invalid_argument("theta: need at least one parameter vector");
  check(cudaSetDevice(m.device), "cudaSetDevice");
  const int L = s.num_layers(), d0 = s.sizes[0], h1 = s.sizes[1], dout = s.sizes.back();
  const int64_t D = m.D, W1 = int64_t(h1) * d0, width1 = P * h1;
  const int64_t N = samples ? n_samples : m.n;
  const bool want_grad = grad_out != nullptr;
  const bool ce = s.loss == Loss::CrossEntropy;
  // Chunks keep the first layer's activations near 64M numbers.
  const int64_t C = std::min<int64_t>(
      N, m.chunk > 0 ? m.chunk : std::max<int64_t>(256, (int64_t(1) << 26) / width1));
  m.theta.resize(P * D);
  check(cudaMemcpy(m.theta.ptr, theta, sizeof(T) * P * D, cudaMemcpyHostToDevice), "theta");
  // First layers of all vectors: (P*h1, d0), and their biases (P*h1).
  m.w1.resize(P * W1);
  check(cudaMemcpy2D(m.w1.ptr, sizeof(T) * W1, m.theta.ptr, sizeof(T) * D, sizeof(T) * W1, P,
                     cudaMemcpyDeviceToDevice), "gather W1");
  if (s.bias) {
    m.b1.resize(width1);
    check(cudaMemcpy2D(m.b1.ptr, sizeof(T) * h1, m.theta.ptr + s.bias_offset(0), sizeof(T) * D,
                       sizeof(T) * h1, P, cudaMemcpyDeviceToDevice), "gather b1");
  }
  if (samples) {
    m.idx.resize(N);
    check(cudaMemcpy(m.idx.ptr, samples, sizeof(int64_t) * N, cudaMemcpyHostToDevice), "idx");
    m.xg.resize(C * d0);
    if (ce) m.yg.resize(C);
    if (m.has_targets) m.tg.resize(C * dout);
  }
  m.a1.resize(C * width1);
  for (int l = 1; l < L; ++l) {
    m.acts[l].resize(size_t(P) * C * s.sizes[l + 1]);
    if (want_grad) m.deltas[l].resize(size_t(P) * C * s.sizes[l + 1]);
  }
  if (want_grad) {
    m.grad.resize(P * D);
    check(cudaMemset(m.grad.ptr, 0, sizeof(T) * P * D), "zero grad");
    m.tmp.resize(size_t(P) * C * h1);
  }
  DeviceBuffer<T> dw1;
  if (want_grad) {
    dw1.resize(P * W1);
    check(cudaMemset(dw1.ptr, 0, sizeof(T) * P * W1), "zero dW1");
  }
  m.loss.resize(P);
  m.correct.resize(P);
  check(cudaMemset(m.loss.ptr, 0, sizeof(double) * P), "zero loss");
  check(cudaMemset(m.correct.ptr, 0, sizeof(double) * P), "zero correct");
  const T scale = ce ? T(1.0 / double(N)) : T(1.0 / (double(N) * dout));
  cublasHandle_t h = m.handle;
  std::vector<int64_t> woff(L), boff(L);
  for (int l = 0; l < L; ++l) {
    woff[l] = s.weight_offset(l);
    boff[l] = s.bias ? s.bias_offset(l) : 0;
  }
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int nc = int(std::min<int64_t>(C, N - r0));
    const T* xc = m.X.ptr + r0 * d0;
    const int32_t* yc = ce ? m.labels.ptr + r0 : nullptr;
    const T* tc = m.has_targets ? m.targets.ptr + r0 * dout : nullptr;
    if (samples) {
      gather_rows<<<grid_for(int64_t(nc) * d0), 256>>>(m.X.ptr, m.idx.ptr + r0, nc, d0, m.xg.ptr);
      if (ce) gather_labels<<<grid_for(nc), 256>>>(m.labels.ptr, m.idx.ptr + r0, nc, m.yg.ptr);
      if (m.has_targets)
        gather_rows<<<grid_for(int64_t(nc) * dout), 256>>>(m.targets.ptr, m.idx.ptr + r0, nc,
                                                            dout, m.tg.ptr);
      xc = m.xg.ptr;
      yc = ce ? m.yg.ptr : nullptr;
      tc = m.has_targets ? m.tg.ptr : nullptr;
    }
    if (!ce && !m.has_targets) tc = xc;
    // Shared first layer: (nc, d0) x (d0, P*h1).
    T* a1 = m.a1.ptr;
    check(gemm(h, false, true, nc, int(width1), d0, T(1), xc, d0, m.w1.ptr, d0, T(0), a1,
               int(width1)), "first layer");
    bias_activate<<<grid_for(int64_t(nc) * width1), 256>>>(
        a1, nc, width1, width1, 0, 1, s.bias ? m.b1.ptr : nullptr, 0, code(s.activation(0)));
    // Per-vector layers: strided batched over the P vectors.
    const T* a_prev = a1;
    int64_t ld_prev = width1, st_prev = h1;
    for (int l = 1; l < L; ++l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      T* z = m.acts[l].ptr;
      check(gemm_batched(h, false, true, nc, out, in, T(1), a_prev, int(ld_prev), st_prev,
                         m.theta.ptr + woff[l], in, D, T(0), z, out, int64_t(nc) * out, int(P)),
            "hidden layer");
      bias_activate<<<grid_for(int64_t(nc) * out * P), 256>>>(
          z, nc, out, out, int64_t(nc) * out, int(P),
          s.bias ? m.theta.ptr + boff[l] : nullptr, D, code(s.activation(l)));
      a_prev = z;
      ld_prev = out;
      st_prev = int64_t(nc) * out;
    }
    T* delta = L == 1 ? a1 : (want_grad ? m.deltas[L - 1].ptr : nullptr);
    output_loss<<<grid_for(int64_t(nc) * P), 256>>>(
        a_prev, ld_prev, st_prev, nc, dout, int(P), yc, tc, tc == xc ? d0 : dout, delta, scale,
        want_grad, code(s.output), ce, m.loss.ptr, m.correct.ptr);
    if (!want_grad) continue;
    for (int l = L - 1; l >= 1; --l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      const T* dl = m.deltas[l].ptr;
      const int64_t st_d = int64_t(nc) * out;
      const T* a_in = l == 1 ? a1 : m.acts[l - 1].ptr;
      const int ld_in = l == 1 ? int(width1) : in;
      const int64_t st_in = l == 1 ? h1 : int64_t(nc) * in;
      check(gemm_batched(h, true, false, out, in, nc, T(1), dl, out, st_d, a_in, ld_in, st_in,
                         T(1), m.grad.ptr + woff[l], in, D, int(P)), "weight gradient");
      if (s.bias)
        column_sums<<<grid_for(int64_t(out) * P), 256>>>(dl, nc, out, out, st_d, int(P),
                                                         m.grad.ptr + boff[l], D);
      T* da = l == 1 ? m.tmp.ptr : m.deltas[l - 1].ptr;
      const int64_t st_da = int64_t(nc) * in;
      check(gemm_batched(h, false, false, nc, in, out, T(1), dl, out, st_d,
                         m.theta.ptr + woff[l], in, D, T(0), da, in, st_da, int(P)),
            "input gradient");
      if (l == 1) {
        // The first layer's deltas replace its activations in a1.
        first_layer_deltas<<<grid_for(int64_t(nc) * h1 * P), 256>>>(
            a1, da, nc, h1, int(P), code(s.activation(0)));
      } else {
        times_derivative<<<grid_for(int64_t(nc) * in * P), 256>>>(
            da, m.acts[l - 1].ptr, nc, in, in, st_da, int(P), code(s.activation(l - 1)));
      }
    }
    if (s.bias)
      column_sums<<<grid_for(width1), 256>>>(a1, nc, width1, width1, 0, 1, m.grad.ptr, 0);
    check(gemm(h, true, false, int(width1), d0, nc, T(1), a1, int(width1), xc, d0, T(1), dw1.ptr,
               d0), "first-layer weight gradient");
  }
  check(cudaGetLastError(), "kernels");
  std::vector<double> l(P), c(P);
  check(cudaMemcpy(l.data(), m.loss.ptr, sizeof(double) * P, cudaMemcpyDeviceToHost), "loss");
  check(cudaMemcpy(c.data(), m.correct.ptr, sizeof(double) * P, cudaMemcpyDeviceToHost), "acc");
  const double inv = ce ? 1.0 / double(N) : 1.0 / (double(N) * dout);
  for (int64_t p = 0; p < P; ++p) {
    loss_out[p] = T(l[p] * inv);
    if (acc_out) acc_out[p] = T(c[p] / double(N));
  }
  if (want_grad) {
    check(cudaMemcpy2D(m.grad.ptr, sizeof(T) * D, dw1.ptr, sizeof(T) * W1, sizeof(T) * W1, P,
                       cudaMemcpyDeviceToDevice), "scatter dW1");
    check(cudaMemcpy(grad_out, m.grad.ptr, sizeof(T) * P * D, cudaMemcpyDeviceToHost), "grad");
  }
}

template <typename T>
void CudaLandscape<T>::evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B,
                                     T* loss, T* grad) const {
  const int64_t D = impl_->D;
  for (int64_t p = 0; p < P; ++p)
    evaluate(theta + p * D, 1, loss + p, grad ? grad + p * D : nullptr, nullptr, samples + p * B,
             B);
}

template class CudaLandscape<float>;
template class CudaLandscape<double>;

}  // namespace losstopo
