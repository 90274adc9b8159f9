// CudaLandscape: the engine of cpp/src/landscape.cpp on a GPU. The dataset lives on
// the device. Every pass has the same shape: per chunk of samples, the first layer's
// pre-activations of all P vectors are formed by the pass's own means (one cuBLAS
// product shared by all vectors, one product per vector, prepared line products, or
// combinations of basis products), then one routine (Impl::layers) runs the rest of
// the network for all vectors at once (strided-batched products and small kernels)
// and its backward pass, and the pass forms the first-layer weight gradient as it
// needs. The network maths (activations, output loss) are network_math.hpp's, shared
// with the CPU engine. Reductions are products with a vector of ones and kernels
// without atomics, so results are reproducible for a given chunk size. Whole SGD
// epochs run on the device (run_sgd_epoch): the same passes on parameters that stay
// there, and an update kernel.
//
// tests/cuda_emulation builds this file as C++ against stand-in CUDA and cuBLAS
// headers (kernel launches transformed into loops) so that CI, without a GPU, runs
// tests/test_cuda.py on its logic. It emulates 1-D launches of kernels whose threads
// do not cooperate; shared memory, barriers or atomics are refused (its README).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/cuda_landscape.hpp"
#include "losstopo/sgd.hpp"
#include "network_math.hpp"
#include "reduced_inputs.hpp"

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

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// Device memory for `size()` values of T; grows on demand (losing its contents).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  ~DeviceBuffer() { release(); }

  T* get() const { return ptr_; }
  size_t size() const { return size_; }
  // Room for at least m values.
  T* reserve(size_t m) {
    if (m <= size_ && ptr_) return ptr_;
    release();
    check(cudaMalloc(&ptr_, sizeof(T) * std::max<size_t>(m, 1)), "cudaMalloc");
    size_ = m;
    return ptr_;
  }
  // The m values at host, copied in.
  T* upload(const T* host, size_t m) {
    reserve(m);
    check(cudaMemcpy(ptr_, host, sizeof(T) * m, cudaMemcpyHostToDevice), "copy to device");
    return ptr_;
  }
  // m zeros.
  T* zeros(size_t m) {
    reserve(m);
    check(cudaMemset(ptr_, 0, sizeof(T) * m), "cudaMemset");
    return ptr_;
  }
  void download(T* host, size_t m) const {
    check(cudaMemcpy(host, ptr_, sizeof(T) * m, cudaMemcpyDeviceToHost), "copy to host");
  }
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

// ------------------------------------------------------------------ cuBLAS, row-major

// Row-major C (m x n) = alpha op(A) op(B) + beta C, through column-major cuBLAS by
// swapping the operands (a row-major matrix is its transpose in column-major).
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
// The same for `count` problems with fixed strides between them (a stride of 0
// reuses one input matrix for every problem).
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
// y (m) += A x for a row-major A (m x n), x (n), in double.
cublasStatus_t add_row_sums(cublasHandle_t h, int m, int n, const double* A, const double* x,
                            double* y) {
  const double one = 1.0;
  return cublasDgemv(h, CUBLAS_OP_T, n, m, &one, A, n, x, 1, &one, y, 1);
}

// ------------------------------------------------------------------ kernels
// All are grid-stride loops over independent elements. "Blocks" below are `count`
// matrices of (rows x cols) at x + b * stride with leading dimension ld: the P
// vectors' slices of one layer for one chunk.

constexpr int kThreads = 256;
dim3 grid_for(int64_t n) {
  return dim3(unsigned(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 4096)));
}
#define LOSSTOPO_GRID_LOOP(i, total)                                                  \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); \
       i += int64_t(gridDim.x) * blockDim.x)

// x = act(x + bias[b * bias_stride + c]) over the blocks (bias may be null).
template <typename T>
__global__ void bias_activate(T* x, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                              int64_t count, const T* bias, int64_t bias_stride, Activation act) {
  LOSSTOPO_GRID_LOOP(i, rows * cols * count) {
    const int64_t c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
    T* v = x + b * stride + r * ld + c;
    T z = *v;
    if (bias) z += bias[b * bias_stride + c];
    *v = math::activate(act, z);
  }
}

// out = g * act'(a) over the blocks; out, g and a share the layout (out may be g or a).
template <typename T>
__global__ void apply_derivative(T* out, const T* g, const T* a, int64_t rows, int64_t cols,
                                 int64_t ld, int64_t stride, int64_t count, Activation act) {
  LOSSTOPO_GRID_LOOP(i, rows * cols * count) {
    const int64_t c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
    const int64_t o = b * stride + r * ld + c;
    out[o] = g[o] * math::derivative(act, a[o]);
  }
}

// One thread per (vector b, row r) of the output blocks `out` (rows x k): the row's
// loss goes to stats[b * rows + r], whether its argmax is the label to
// stats[(count + b) * rows + r]; with delta (the layout of out, may alias it),
// dLoss/dz * scale goes there. Row r of vector b has label labels[b * label_stride + r]
// and target row target + b * target_stride + r * ld_t.
template <typename T>
__global__ void output_loss(const T* out, int64_t ld, int64_t stride, int64_t rows, int k,
                            int64_t count, Loss loss, Activation act, const int32_t* labels,
                            int64_t label_stride, const T* target, int64_t ld_t,
                            int64_t target_stride, T* delta, T scale, double* stats) {
  const int64_t total = rows * count;
  LOSSTOPO_GRID_LOOP(i, total) {
    const int64_t r = i % rows, b = i / rows;
    const int64_t o = b * stride + r * ld;
    bool correct = false;
    stats[i] = math::row_loss(loss, act, out + o, k, labels ? labels[b * label_stride + r] : 0,
                              target ? target + b * target_stride + r * ld_t : nullptr,
                              delta ? delta + o : nullptr, scale, static_cast<T*>(nullptr),
                              &correct);
    stats[total + i] = correct ? 1.0 : 0.0;
  }
}

// The R-operator of a delta through an activation, over the blocks: on entry rd holds
// R{delta_l} W_l + delta_l V_l; rd = rd * act'(a) + delta * (act''/act')(a) * rz.
// All four share the layout.
template <typename T>
__global__ void r_delta(T* rd, const T* a, const T* delta, const T* rz, int64_t rows,
                        int64_t cols, int64_t ld, int64_t stride, int64_t count, Activation act) {
  LOSSTOPO_GRID_LOOP(i, rows * cols * count) {
    const int64_t c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
    const int64_t o = b * stride + r * ld + c;
    rd[o] = rd[o] * math::derivative(act, a[o]) + delta[o] * math::curvature_ratio(act, a[o]) * rz[o];
  }
}

// One thread per (vector b, row r) of the output blocks: rd = R{dLoss/dz} of the row
// (math::row_loss_rop) from the outputs, their deltas and R{z}; all share the layout.
template <typename T>
__global__ void output_rop(const T* out, const T* delta, const T* rz, T* rd, int64_t ld,
                           int64_t stride, int64_t rows, int k, int64_t count, Loss loss,
                           Activation act, T scale) {
  LOSSTOPO_GRID_LOOP(i, rows * count) {
    const int64_t r = i % rows, b = i / rows;
    const int64_t o = b * stride + r * ld;
    math::row_loss_rop(loss, act, out + o, k, delta + o, rz + o, rd + o, scale);
  }
}

// out (rows, cols) = rows idx[0 .. rows) of X (., cols).
template <typename T>
__global__ void gather_rows(const T* X, const int64_t* idx, int64_t rows, int64_t cols, T* out) {
  LOSSTOPO_GRID_LOOP(i, rows * cols) {
    const int64_t r = i / cols, c = i % cols;
    out[i] = X[idx[r] * cols + c];
  }
}

__global__ void gather_labels(const int32_t* y, const int64_t* idx, int64_t rows, int32_t* out) {
  LOSSTOPO_GRID_LOOP(i, rows) out[i] = y[idx[i]];
}

// Combinations of column groups of width w: for r < rows, p < P, j < w,
//   out[r * ld_out + p * w + j] = sum_k coef[p * nnz + k] in[r * ld_in + index[p * nnz + k] * w + j]
// (k in order). With rows = 1 and w = D: points from basis vectors; with w = h1: the
// first layers of the points from the basis vectors' first layers.
template <typename T>
__global__ void combine(const T* in, int64_t ld_in, const int32_t* index, const T* coef,
                        int nnz, int64_t rows, int64_t P, int64_t w, T* out, int64_t ld_out) {
  LOSSTOPO_GRID_LOOP(i, rows * P * w) {
    const int64_t j = i % w, p = (i / w) % P, r = i / (w * P);
    const T* src = in + r * ld_in + j;
    T s = T(0);
    for (int k = 0; k < nnz; ++k) s += coef[p * nnz + k] * src[int64_t(index[p * nnz + k]) * w];
    out[r * ld_out + p * w + j] = s;
  }
}

// Points on lines, column groups of width w: for r < rows, k < n, j < w,
//   out[r * ld_out + k * w + j] = x[o] - u[k] d[o],  o = r * ld_in + lines[k] * w + j.
// With rows = 1 and w = D: the points x_l - u d_l; with w = h1 and the prepared
// products as x and d: their first layers.
template <typename T>
__global__ void line_points(const T* x, const T* d, int64_t ld_in, const int64_t* lines,
                            const T* u, int64_t rows, int64_t n, int64_t w, T* out,
                            int64_t ld_out) {
  LOSSTOPO_GRID_LOOP(i, rows * n * w) {
    const int64_t j = i % w, k = (i / w) % n, r = i / (w * n);
    const int64_t o = r * ld_in + lines[k] * w + j;
    out[r * ld_out + k * w + j] = x[o] - u[k] * d[o];
  }
}

// The projected first-layer deltas: for r < rows, q < K, j < h1,
//   out[r * K*h1 + q * h1 + j] = sum_p proj[p * K + q] delta[r * P*h1 + p * h1 + j]  (p in order).
template <typename T>
__global__ void project_deltas(const T* delta, int64_t P, const T* proj, int64_t K, int64_t rows,
                               int64_t h1, T* out) {
  LOSSTOPO_GRID_LOOP(i, rows * K * h1) {
    const int64_t j = i % h1, q = (i / h1) % K, r = i / (h1 * K);
    const T* src = delta + r * P * h1 + j;
    T s = T(0);
    for (int64_t p = 0; p < P; ++p) s += proj[p * K + q] * src[p * h1];
    out[i] = s;
  }
}

template <typename T>
__global__ void fill(T* x, int64_t n, T value) {
  LOSSTOPO_GRID_LOOP(i, n) x[i] = value;
}

// Products and sums rounded one at a time (never fused into an FMA), so that an SGD
// step computes what the CPU engine's loop computes (sgd.cpp).
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

// One SGD step for the n = P*D parameters w with gradients g, as the generic loop of
// sgd.cpp: with velocities v (momentum mu), v = mu v + g and w -= lr v; else w -= lr g.
template <typename T>
__global__ void sgd_update(T* w, T* v, const T* g, int64_t n, T lr, T mu) {
  LOSSTOPO_GRID_LOOP(i, n) {
    if (v) {
      v[i] = add_rn(mul_rn(mu, v[i]), g[i]);
      w[i] = sub_rn(w[i], mul_rn(lr, v[i]));
    } else {
      w[i] = sub_rn(w[i], mul_rn(lr, g[i]));
    }
  }
}

#undef LOSSTOPO_GRID_LOOP

// ------------------------------------------------------------------ rows of runs

// Whether rows are rows[0], rows[0] + 1, ... (one block of host memory).
bool consecutive(const std::vector<int64_t>& rows) {
  return rows.back() - rows.front() + 1 == int64_t(rows.size());
}
// The rows `rows` of host (., width), contiguous on the device in buf.
template <typename T>
T* upload_rows(DeviceBuffer<T>& buf, const T* host, const std::vector<int64_t>& rows,
               int64_t width) {
  const size_t count = rows.size() * size_t(width);
  if (consecutive(rows)) return buf.upload(host + rows.front() * width, count);
  std::vector<T> staged(count);
  for (size_t a = 0; a < rows.size(); ++a)
    std::copy(host + rows[a] * width, host + (rows[a] + 1) * width, &staged[a * width]);
  return buf.upload(staged.data(), count);
}
// The inverse: the device rows of buf back into the rows `rows` of host.
template <typename T>
void download_rows(const DeviceBuffer<T>& buf, T* host, const std::vector<int64_t>& rows,
                   int64_t width) {
  const size_t count = rows.size() * size_t(width);
  if (consecutive(rows)) return buf.download(host + rows.front() * width, count);
  std::vector<T> staged(count);
  buf.download(staged.data(), count);
  for (size_t a = 0; a < rows.size(); ++a)
    std::copy(&staged[a * width], &staged[(a + 1) * width], host + rows[a] * width);
}
// m values from the device to host.
template <typename T>
void copy_to_host(T* host, const T* dev, int64_t m) {
  check(cudaMemcpy(host, dev, sizeof(T) * m, cudaMemcpyDeviceToHost), "copy to host");
}
// Rows keep[k] (increasing) of the device rows x (., width) become rows k.
template <typename U>
void keep_rows(U* x, const std::vector<int64_t>& keep, int64_t width) {
  for (size_t k = 0; k < keep.size(); ++k)
    if (keep[k] != int64_t(k))
      check(cudaMemcpy(x + k * width, x + keep[k] * width, sizeof(U) * width,
                       cudaMemcpyDeviceToDevice), "keep rows");
}

}  // namespace

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// ------------------------------------------------------------------ the engine

template <typename T>
struct CudaLandscape<T>::Impl {
  // The P parameter vectors of a pass, on the device.
  struct Vectors {
    const T* theta;  // (P, D)
    int64_t P;
    T* grad;  // (P, D) or null; layers(): every parameter but the first-layer weights
    T scale;  // dLoss/dz scale: math::mean_factor over the pass's samples
  };
  // The data rows of one chunk: nc rows per vector, vector p's at x + p * x_stride
  // (stride 0: shared by all vectors), and likewise labels (CE) or targets (MSE).
  struct Rows {
    int nc = 0;
    const T* x = nullptr;  // (nc, d0)
    int64_t x_stride = 0;
    const int32_t* y = nullptr;  // (nc) or null
    int64_t y_stride = 0;
    const T* t = nullptr;  // (nc, t_ld) or null
    int64_t t_ld = 0, t_stride = 0;
  };

  MLPSpec spec;
  int L = 0, d0 = 0, h1 = 0, dout = 0;
  int widest = 0;  // the widest layer after the input
  int64_t n = 0, D = 0, W1 = 0;
  int64_t chunk = 0;  // fixed rows per chunk, or 0
  int device = 0;
  bool ce = false, mse_on_input = false, has_targets = false;
  bool tf32 = false;  // TF32 products (losses and gradients; never Hessian products)
  std::vector<int64_t> woff, boff;
  cublasHandle_t handle = nullptr;
  std::mutex mutex;  // one call at a time uses the buffers below

  // The dataset.
  DeviceBuffer<T> X, targets;  // (n, d0), (n, dout) or empty
  DeviceBuffer<int32_t> labels;  // (n) for cross-entropy
  // Buffers of one call.
  DeviceBuffer<T> theta;     // (P, D): the vectors (or points) of the call
  DeviceBuffer<T> grad;      // (P, D)
  DeviceBuffer<T> w1;        // (rows, d0): first-layer weights, one block of h1 rows per vector
  DeviceBuffer<T> dw1;       // the same shape: their gradients
  DeviceBuffer<T> a1;        // (C, P*h1): first-layer activations, then deltas
  DeviceBuffer<T> tmp;       // (C, P*h1): gradients w.r.t. the first layer's outputs
  std::vector<DeviceBuffer<T>> acts, deltas;  // layer l >= 1: (P, C, sizes[l+1])
  DeviceBuffer<T> xg, tg;    // gathered inputs and targets
  DeviceBuffer<int32_t> yg;  // gathered labels
  DeviceBuffer<int64_t> idx;
  DeviceBuffer<T> ones;          // (C) of T(1): bias gradients as products
  DeviceBuffer<double> ones_d;   // (C) of 1.0: loss sums as products
  DeviceBuffer<double> stats;    // (2, P, nc): per-row losses and correct flags
  DeviceBuffer<double> totals;   // (2, P): summed losses and correct counts
  // Combinations: V (Q, D), coef (P, nnz), index (P, nnz), the basis products
  // (C, Q*h1), proj (P, K), the projected deltas (C, K*h1), proj_grad (K, D).
  DeviceBuffer<T> basis, coef, basis_rows, proj, proj_delta, proj_grad;
  DeviceBuffer<int32_t> index;
  // Prepared lines: the queried lines and steps (n).
  DeviceBuffer<int64_t> lines;
  DeviceBuffer<T> steps;
  // SGD epochs: the runs' velocities (A, D) (theta and grad hold their parameters and
  // gradients) and minibatch orders (A, n), or (1, n) when shared.
  DeviceBuffer<T> velocity;
  DeviceBuffer<int64_t> orders;
  // Hessian-vector products: the directions (P, D) and their products (P, D), the
  // first layers of the directions and their products (P*h1, d0), the first layer's
  // outputs (C, P*h1) kept beside a1 (which ends holding its deltas), their
  // R-operators (C, P*h1) and those of the later layers l >= 1 (P, C, sizes[l+1]).
  DeviceBuffer<T> dirs, hv, vw1, hw1, a1_out, rz1, ra1, rd1;
  std::vector<DeviceBuffer<T>> rz, ra, rd;

  ~Impl() {
    cudaSetDevice(device);
    if (handle) cublasDestroy(handle);
  }

  void use_device() const { check(cudaSetDevice(device), "cudaSetDevice"); }

  // Rows per chunk for a pass over N samples whose buffers hold `width` numbers per
  // row: the largest buffers near 64M numbers, unless the chunk size is fixed.
  int64_t chunk_rows(int64_t N, int64_t width) const {
    if (chunk > 0) return std::min(chunk, N);
    return std::min(N, std::max<int64_t>(64, (int64_t(1) << 26) / std::max<int64_t>(width, 1)));
  }

  // dst (count*h1, d0) = the first-layer weights of the vectors src (count, D).
  void first_layers(const T* src, int64_t count, T* dst) const {
    check(cudaMemcpy2D(dst, sizeof(T) * W1, src, sizeof(T) * D, sizeof(T) * W1, count,
                       cudaMemcpyDeviceToDevice), "gather first layers");
  }
  // The inverse: rows q*h1 .. q*h1+h1 of src (count*h1, d0) into dst + q*D (count, D).
  void place_first_layers(const T* src, int64_t count, T* dst) const {
    check(cudaMemcpy2D(dst, sizeof(T) * D, src, sizeof(T) * W1, sizeof(T) * W1, count,
                       cudaMemcpyDeviceToDevice), "scatter first layers");
  }

  // The buffers of a pass over P vectors in chunks of C rows; zeroes the totals.
  void reserve(int64_t P, int64_t C, bool want_grad) {
    a1.reserve(size_t(C) * P * h1);
    for (int l = 1; l < L; ++l) {
      acts[l].reserve(size_t(P) * C * spec.sizes[l + 1]);
      if (want_grad) deltas[l].reserve(size_t(P) * C * spec.sizes[l + 1]);
    }
    if (want_grad && L > 1) tmp.reserve(size_t(C) * P * h1);
    if (ones.size() < size_t(C)) {
      fill<<<grid_for(C), kThreads>>>(ones.reserve(C), C, T(1));
      fill<<<grid_for(C), kThreads>>>(ones_d.reserve(C), C, 1.0);
    }
    stats.reserve(size_t(2) * P * C);
    totals.zeros(size_t(2) * P);
  }

  // The rows of a chunk: rows r0 .. r0+nc of x, y, t, with vectors per_vector rows
  // apart (0: shared). y and t are null where the loss does not use them.
  Rows rows_at(const T* x, const int32_t* y, const T* t, int64_t r0, int nc,
               int64_t per_vector) const {
    Rows r;
    r.nc = nc;
    r.x = x + r0 * d0;
    r.x_stride = per_vector * d0;
    if (ce) {
      r.y = y + r0;
      r.y_stride = per_vector;
    } else if (mse_on_input) {
      r.t = r.x;
      r.t_ld = d0;
      r.t_stride = r.x_stride;
    } else {
      r.t = t + r0 * dout;
      r.t_ld = dout;
      r.t_stride = per_vector * dout;
    }
    return r;
  }
  // Rows r0 .. r0+nc of the dataset, shared by all vectors.
  Rows dataset_rows(int64_t r0, int nc) const {
    return rows_at(X.get(), labels.get(), targets.get(), r0, nc, 0);
  }
  // Gathers the dataset's rows idx_dev[0 .. count) into xg, yg, tg.
  void gather(const int64_t* idx_dev, int64_t count) {
    gather_rows<<<grid_for(count * d0), kThreads>>>(X.get(), idx_dev, count, d0,
                                                    xg.reserve(size_t(count) * d0));
    if (ce) gather_labels<<<grid_for(count), kThreads>>>(labels.get(), idx_dev, count,
                                                         yg.reserve(count));
    if (has_targets)
      gather_rows<<<grid_for(count * dout), kThreads>>>(targets.get(), idx_dev, count, dout,
                                                        tg.reserve(size_t(count) * dout));
  }
  // Rows r0 .. r0+nc of the gathered rows, with vectors per_vector rows apart.
  Rows gathered_rows(int64_t r0, int nc, int64_t per_vector) const {
    return rows_at(xg.get(), yg.get(), tg.get(), r0, nc, per_vector);
  }
  // Rows r0 .. r0+nc of a pass shared by all vectors: of the dataset (idx null), or
  // the rows idx[r0 .. r0+nc) (device) gathered.
  Rows shared_rows(const int64_t* idx, int64_t r0, int nc) {
    if (!idx) return dataset_rows(r0, nc);
    gather(idx + r0, nc);
    return gathered_rows(0, nc, 0);
  }

  // Everything after the first layer's product, for one chunk and all P vectors of v:
  // a1 (nc, P*h1), vector p in columns p*h1 .. p*h1+h1, holds X W1_p^T. Adds the
  // first-layer bias and activation, runs the per-vector layers, adds each vector's
  // summed losses and correct counts to totals. With v.grad, runs the backward pass:
  // the gradients of every parameter but the first-layer weights accumulate in
  // v.grad, and a1 ends holding the first layer's deltas dLoss/dz1 (scaled), from
  // which the caller forms the first-layer weight gradient.
  void layers(const Vectors& v, const Rows& rows, T* a1p) {
    const MLPSpec& s = spec;
    const int nc = rows.nc, P = int(v.P);
    const int64_t width1 = v.P * h1;
    const bool want_grad = v.grad != nullptr;
    cublasHandle_t h = handle;
    auto bias_of = [&](int l) { return s.bias ? v.theta + boff[l] : nullptr; };

    // First layer: blocks (nc, h1), ld P*h1, h1 apart.
    if (s.bias || s.activation(0) != Activation::Identity)
      bias_activate<<<grid_for(int64_t(nc) * width1), kThreads>>>(
          a1p, nc, h1, width1, h1, P, bias_of(0), D, s.activation(0));
    // Per-vector layers l >= 1: z_p (nc, out) = a_p (nc, in) W_p^T, strided batched.
    const T* a_prev = a1p;
    int64_t ld_prev = width1, st_prev = h1;
    for (int l = 1; l < L; ++l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      T* z = acts[l].get();
      check(gemm_batched(h, false, true, nc, out, in, T(1), a_prev, int(ld_prev), st_prev,
                         v.theta + woff[l], in, D, T(0), z, out, int64_t(nc) * out, P),
            "layer forward");
      if (s.bias || s.activation(l) != Activation::Identity)
        bias_activate<<<grid_for(int64_t(nc) * out * P), kThreads>>>(
            z, nc, out, out, int64_t(nc) * out, P, bias_of(l), D, s.activation(l));
      a_prev = z;
      ld_prev = out;
      st_prev = int64_t(nc) * out;
    }
    // Losses per (vector, row), dLoss/dz of the output layer, and the sums per vector.
    T* delta = !want_grad ? nullptr : L == 1 ? a1p : deltas[L - 1].get();
    output_loss<<<grid_for(int64_t(nc) * P), kThreads>>>(
        a_prev, ld_prev, st_prev, nc, dout, P, s.loss, s.output, rows.y, rows.y_stride, rows.t,
        rows.t_ld, rows.t_stride, delta, v.scale, stats.get());
    check(add_row_sums(h, 2 * P, nc, stats.get(), ones_d.get(), totals.get()), "loss sums");
    if (!want_grad) return;

    // Backward through the per-vector layers, down to the first layer's deltas.
    const T* ones_p = ones.get();
    for (int l = L - 1; l >= 1; --l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      const T* dl = deltas[l].get();  // (nc, out) per vector, nc*out apart
      const int64_t st_d = int64_t(nc) * out;
      const T* a_in = l == 1 ? a1p : acts[l - 1].get();
      const int ld_in = l == 1 ? int(width1) : in;
      const int64_t st_in = l == 1 ? h1 : int64_t(nc) * in;
      // dW_p (out, in) += delta_p^T (out, nc) a_p (nc, in).
      check(gemm_batched(h, true, false, out, in, nc, T(1), dl, out, st_d, a_in, ld_in, st_in,
                         T(1), v.grad + woff[l], in, D, P), "weight gradient");
      // db_p (1, out) += ones (1, nc) delta_p (nc, out).
      if (s.bias)
        check(gemm_batched(h, false, false, 1, out, nc, T(1), ones_p, nc, 0, dl, out, st_d,
                           T(1), v.grad + boff[l], out, D, P), "bias gradient");
      // dA_p (nc, in) = delta_p (nc, out) W_p (out, in): into tmp in a1's layout for
      // the first layer, else into the next deltas; then times act'.
      const Activation act = s.activation(l - 1);
      if (l == 1) {
        check(gemm_batched(h, false, false, nc, h1, out, T(1), dl, out, st_d, v.theta + woff[l],
                           h1, D, T(0), tmp.get(), int(width1), h1, P), "input gradient");
        apply_derivative<<<grid_for(int64_t(nc) * width1), kThreads>>>(
            a1p, tmp.get(), a1p, nc, h1, width1, h1, P, act);
      } else {
        T* da = deltas[l - 1].get();
        const int64_t st_da = int64_t(nc) * in;
        check(gemm_batched(h, false, false, nc, in, out, T(1), dl, out, st_d, v.theta + woff[l],
                           in, D, T(0), da, in, st_da, P), "input gradient");
        apply_derivative<<<grid_for(int64_t(nc) * in * P), kThreads>>>(
            da, da, acts[l - 1].get(), nc, in, in, st_da, P, act);
      }
    }
    // First-layer bias: db1_p (1, h1) += ones (1, nc) delta1_p (nc, h1).
    if (s.bias)
      check(gemm_batched(h, false, false, 1, h1, nc, T(1), ones_p, nc, 0, a1p, int(width1), h1,
                         T(1), v.grad + boff[0], h1, D, P), "first-layer bias gradient");
  }

  // Mean losses (and accuracies) of the P vectors of a pass over N samples.
  void read_losses(int64_t P, int64_t N, T* loss_out, T* acc_out) const {
    check(cudaGetLastError(), "kernels");
    std::vector<double> t(2 * P);
    totals.download(t.data(), acc_out ? 2 * P : P);
    const double inv = math::mean_factor(spec, N);
    for (int64_t p = 0; p < P; ++p) {
      loss_out[p] = T(t[p] * inv);
      if (acc_out) acc_out[p] = T(t[P + p] / double(N));
    }
  }

  // The two passes with gradients, on vectors already on the device: theta (P, D),
  // device memory that grad does not alias. Each leaves the summed losses (and
  // correct counts) in totals for read_losses() and, with want_grad, the gradients
  // (P, D) in grad.

  // All vectors on the same N samples: the whole dataset (idx null) or the rows
  // idx[0 .. N) (device).
  void shared_pass(const T* theta_dev, int64_t P, const int64_t* idx, int64_t N,
                   bool want_grad) {
    const int64_t width1 = P * h1;
    first_layers(theta_dev, P, w1.reserve(size_t(P) * W1));  // (P*h1, d0)
    const int64_t C = chunk_rows(N, P * widest);
    reserve(P, C, want_grad);
    if (want_grad) {
      grad.zeros(size_t(P) * D);
      dw1.reserve(size_t(P) * W1);
    }
    const Vectors v{theta_dev, P, want_grad ? grad.get() : nullptr, T(math::mean_factor(spec, N))};
    T* a1p = a1.get();
    for (int64_t r0 = 0; r0 < N; r0 += C) {
      const int nc = int(std::min<int64_t>(C, N - r0));
      const Rows rows = shared_rows(idx, r0, nc);
      // The first layer of all P vectors in one product: (nc, d0) x (d0, P*h1).
      check(gemm(handle, false, true, nc, int(width1), d0, T(1), rows.x, d0, w1.get(), d0, T(0),
                 a1p, int(width1)), "first layer");
      layers(v, rows, a1p);
      // Its weight gradient in one product: dW1 (P*h1, d0) += delta1^T (P*h1, nc) x (nc, d0).
      if (want_grad)
        check(gemm(handle, true, false, int(width1), d0, nc, T(1), a1p, int(width1), rows.x, d0,
                   r0 == 0 ? T(0) : T(1), dw1.get(), d0), "first-layer weight gradient");
    }
    if (want_grad) place_first_layers(dw1.get(), P, grad.get());
  }

  // Vector p on its own B samples, the rows idx[p*B .. p*B+B) (device): all P*B rows
  // are gathered at once, vector p's into rows p*B .. p*B+B of xg, yg, tg.
  void each_pass(const T* theta_dev, int64_t P, const int64_t* idx, int64_t B, bool want_grad) {
    const int64_t width1 = P * h1;
    gather(idx, P * B);
    const int64_t C = chunk_rows(B, P * widest);
    reserve(P, C, want_grad);
    if (want_grad) grad.zeros(size_t(P) * D);
    const Vectors v{theta_dev, P, want_grad ? grad.get() : nullptr, T(math::mean_factor(spec, B))};
    T* a1p = a1.get();
    for (int64_t r0 = 0; r0 < B; r0 += C) {
      const int nc = int(std::min<int64_t>(C, B - r0));
      // Rows r0 .. r0+nc of every vector's own samples.
      const Rows rows = gathered_rows(r0, nc, B);
      // First layer per vector: a1_p (nc, h1) = X_p (nc, d0) W1_p^T, strided batched;
      // W1_p is the start of theta_p.
      check(gemm_batched(handle, false, true, nc, h1, d0, T(1), rows.x, d0, rows.x_stride,
                         theta_dev, d0, D, T(0), a1p, int(width1), h1, int(P)), "first layer");
      layers(v, rows, a1p);
      // Its weight gradient per vector, straight into grad_p: dW1_p (h1, d0) +=
      // delta1_p^T (h1, nc) X_p (nc, d0).
      if (want_grad)
        check(gemm_batched(handle, true, false, h1, d0, nc, T(1), a1p, int(width1), h1, rows.x,
                           d0, rows.x_stride, T(1), grad.get(), d0, D, int(P)),
              "first-layer weight gradient");
    }
  }

  // out (n, count*h1) = X W1^T over the whole dataset for the first layers of the
  // vectors vecs (count, D) (prepared lines).
  void dataset_products(const T* vecs, int64_t count, T* out) {
    const int64_t width = count * h1, C = chunk_rows(n, width);
    first_layers(vecs, count, w1.reserve(size_t(count) * W1));
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const int nc = int(std::min<int64_t>(C, n - r0));
      check(gemm(handle, false, true, nc, int(width), d0, T(1), X.get() + r0 * d0, d0, w1.get(),
                 d0, T(0), out + r0 * width, int(width)), "line products");
    }
  }
};

template <typename T>
CudaLandscape<T>::CudaLandscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels,
                                const T* targets, CudaOptions options) {
  spec.validate();
  options.validate();
  math::check_data(spec, n, labels, targets != nullptr);
  if (spec.num_params() > kIntMax)
    throw std::invalid_argument("sizes: more parameters than a BLAS dimension can hold");
  if (options.drop_zero_columns) {  // the engine on the kept columns, where some are zero
    CudaOptions kept = options;
    kept.drop_zero_columns = false;
    reduced_ = reduced::build<T, CudaLandscape<T>>(spec, X, n, labels, targets, kept);
    if (reduced_) return;  // (no Impl here: its destructor would select a device)
  }
  impl_ = std::make_unique<Impl>();
  Impl& m = *impl_;
  m.spec = std::move(spec);
  const MLPSpec& s = m.spec;
  m.L = s.num_layers();
  m.d0 = s.sizes.front();
  m.h1 = s.sizes[1];
  m.dout = s.sizes.back();
  m.widest = *std::max_element(s.sizes.begin() + 1, s.sizes.end());
  m.n = n;
  m.D = s.num_params();
  m.W1 = int64_t(m.h1) * m.d0;
  m.chunk = options.chunk;
  m.device = options.device;
  m.ce = s.loss == Loss::CrossEntropy;
  m.has_targets = !m.ce && targets != nullptr;
  m.mse_on_input = !m.ce && !targets;
  for (int l = 0; l < m.L; ++l) {
    m.woff.push_back(s.weight_offset(l));
    m.boff.push_back(s.bias ? s.bias_offset(l) : 0);
  }
  m.acts.resize(m.L);
  m.deltas.resize(m.L);
  m.rz.resize(m.L);
  m.ra.resize(m.L);
  m.rd.resize(m.L);
  m.use_device();
  check(cublasCreate(&m.handle), "cublasCreate");
  m.tf32 = options.tf32;
  if (m.tf32) check(cublasSetMathMode(m.handle, CUBLAS_TF32_TENSOR_OP_MATH), "cublasSetMathMode");
  m.X.upload(X, size_t(n) * m.d0);
  if (m.ce) m.labels.upload(labels, n);
  if (m.has_targets) m.targets.upload(targets, size_t(n) * m.dout);
}

template <typename T>
CudaLandscape<T>::~CudaLandscape() = default;

template <typename T>
int64_t CudaLandscape<T>::num_params() const {
  return reduced_ ? reduced_->num_params() : impl_->D;
}
template <typename T>
int64_t CudaLandscape<T>::num_samples() const {
  return reduced_ ? reduced_->num_samples() : impl_->n;
}
template <typename T>
bool CudaLandscape<T>::classifier() const {
  return reduced_ ? reduced_->classifier() : impl_->ce;
}
template <typename T>
int CudaLandscape<T>::kept_columns() const {
  return reduced_ ? reduced_->columns().dk() : impl_->d0;
}

template <typename T>
void CudaLandscape<T>::evaluate(const T* theta, int64_t P, T* loss_out, T* grad_out, T* acc_out,
                                const int64_t* samples, int64_t n_samples) const {
  if (reduced_) return reduced_->evaluate(theta, P, loss_out, grad_out, acc_out, samples, n_samples);
  Impl& m = *impl_;
  math::check_vectors(theta, P, m.h1);
  if (samples) math::check_samples(samples, n_samples, m.n);
  std::lock_guard<std::mutex> lock(m.mutex);
  m.use_device();
  const int64_t N = samples ? n_samples : m.n;
  const T* theta_dev = m.theta.upload(theta, size_t(P) * m.D);
  m.shared_pass(theta_dev, P, samples ? m.idx.upload(samples, N) : nullptr, N, grad_out != nullptr);
  m.read_losses(P, N, loss_out, acc_out);
  if (grad_out) m.grad.download(grad_out, size_t(P) * m.D);
}

template <typename T>
void CudaLandscape<T>::evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B,
                                     T* loss_out, T* grad_out) const {
  if (reduced_) return reduced_->evaluate_each(theta, P, samples, B, loss_out, grad_out);
  Impl& m = *impl_;
  math::check_vectors(theta, P, m.h1);
  if (!samples || B <= 0) throw std::invalid_argument("samples: need (P, B) sample indices");
  math::check_samples(samples, P * B, m.n);
  std::lock_guard<std::mutex> lock(m.mutex);
  m.use_device();
  const T* theta_dev = m.theta.upload(theta, size_t(P) * m.D);
  m.each_pass(theta_dev, P, m.idx.upload(samples, size_t(P) * B), B, grad_out != nullptr);
  m.read_losses(P, B, loss_out, nullptr);
  if (grad_out) m.grad.download(grad_out, size_t(P) * m.D);
}

// ------------------------------------------------------------------ SGD epochs

// The active runs' parameters (and velocities) and their minibatch orders go up once;
// on the device, row a holds run runs[a]. Per step, the passes above compute the
// minibatch losses and gradients of all rows, only the losses come back (to stop the
// runs whose loss is not finite), and one kernel updates the rows in place. At the
// end of the epoch the rows go back. On an error the runs still going keep their
// parameters of the epoch's start.
template <typename T>
bool CudaLandscape<T>::run_sgd_epoch(T* theta, T* velocity, int64_t R, uint8_t* active,
                                     const SGDParams& p, const int64_t* orders) const {
  if (reduced_) return reduced_->run_sgd_epoch(theta, velocity, R, active, p, orders);
  p.validate();
  const bool momentum = p.momentum > 0.0;
  if (momentum && !velocity) throw std::invalid_argument("velocity: needed for momentum");
  Impl& m = *impl_;
  const int64_t n = m.n, D = m.D, B = p.batch_size, steps = (n + B - 1) / B;
  std::vector<int64_t> runs;
  for (int64_t r = 0; r < R; ++r)
    if (active[r]) runs.push_back(r);
  if (runs.empty()) return true;
  int64_t A = int64_t(runs.size());
  math::check_vectors(theta, A, m.h1);
  const int64_t n_orders = p.shared_order ? 1 : A;
  math::check_samples(orders, n_orders * n, n);
  std::lock_guard<std::mutex> lock(m.mutex);
  m.use_device();
  T* w = upload_rows(m.theta, theta, runs, D);
  T* v = momentum ? upload_rows(m.velocity, velocity, runs, D) : nullptr;
  int64_t* order = m.orders.upload(orders, size_t(n_orders) * n);
  const T lr = T(p.lr), mu = T(p.momentum);
  std::vector<T> loss;
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t b0 = step * B, nb = std::min(B, n - b0);
    if (p.shared_order) {
      m.shared_pass(w, A, order + b0, nb, true);
    } else {
      // Row a's minibatch: positions b0 .. b0+nb of its order, into idx (A, nb).
      check(cudaMemcpy2D(m.idx.reserve(size_t(A) * nb), sizeof(int64_t) * nb, order + b0,
                         sizeof(int64_t) * n, sizeof(int64_t) * nb, A, cudaMemcpyDeviceToDevice),
            "minibatch indices");
      m.each_pass(w, A, m.idx.get(), nb, true);
    }
    loss.resize(A);
    m.read_losses(A, nb, loss.data(), nullptr);
    // A run whose loss is not finite stops with its parameters (and velocity) of
    // before this step: its rows come back now, and the rows after them close up.
    std::vector<int64_t> keep, kept_runs;
    for (int64_t a = 0; a < A; ++a) {
      if (std::isfinite(loss[a])) {
        keep.push_back(a);
        kept_runs.push_back(runs[a]);
        continue;
      }
      copy_to_host(theta + runs[a] * D, w + a * D, D);
      if (v) copy_to_host(velocity + runs[a] * D, v + a * D, D);
      active[runs[a]] = 0;
    }
    if (int64_t(keep.size()) < A) {
      keep_rows(w, keep, D);
      keep_rows(m.grad.get(), keep, D);
      if (v) keep_rows(v, keep, D);
      if (!p.shared_order) keep_rows(order, keep, n);
      runs.swap(kept_runs);
      A = int64_t(runs.size());
      if (A == 0) return true;
    }
    sgd_update<<<grid_for(A * D), kThreads>>>(w, v, m.grad.get(), A * D, lr, mu);
  }
  check(cudaGetLastError(), "kernels");
  download_rows(m.theta, theta, runs, D);
  if (v) download_rows(m.velocity, velocity, runs, D);
  return true;
}

// ------------------------------------------------------------------ prepared lines

template <typename T>
class CudaLandscape<T>::Lines final : public LineEvaluator<T> {
 public:
  explicit Lines(Impl& m) : m_(m) {}
  ~Lines() override { cudaSetDevice(m_.device); }  // the buffers are freed on it

  // x, d (P, D) and the products A = X x1^T, B = X d1^T (n, P*h1) stay on the device.
  bool prepare(const T* x, const T* d, int64_t P) override {
    Impl& m = m_;
    std::lock_guard<std::mutex> lock(m.mutex);
    P_ = 0;
    if (!x || !d || P < 1 || P * m.h1 > kIntMax) return false;
    const double bytes = 2.0 * double(m.n) * double(P * m.h1) * sizeof(T);
    if (bytes > kBudgetBytes) return false;
    m.use_device();
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const double held = double(A_.size() + B_.size()) * sizeof(T);
    if (bytes - held > 0.5 * double(free_bytes)) return false;
    const size_t count = size_t(m.n) * P * m.h1;
    try {
      A_.reserve(count);
      B_.reserve(count);
    } catch (const std::runtime_error&) {  // out of memory: not offered for these lines
      cudaGetLastError();
      A_.release();
      B_.release();
      return false;
    }
    x_.upload(x, size_t(P) * m.D);
    d_.upload(d, size_t(P) * m.D);
    m.dataset_products(x_.get(), P, A_.get());
    m.dataset_products(d_.get(), P, B_.get());
    check(cudaGetLastError(), "kernels");
    P_ = P;
    return true;
  }

  // Only the line indices and the steps go up, only the losses come back.
  void values(const int64_t* lines, const T* u, int64_t n, T* loss) const override {
    if (n < 1) return;
    for (int64_t k = 0; k < n; ++k)
      if (lines[k] < 0 || lines[k] >= P_)
        throw std::invalid_argument("lines: index outside the prepared lines");
    Impl& m = m_;
    if (n * m.h1 > kIntMax) throw std::invalid_argument("lines: too many points for one call");
    std::lock_guard<std::mutex> lock(m.mutex);
    m.use_device();
    const int64_t D = m.D, h1 = m.h1, N = m.n, ld = P_ * h1;
    const int64_t* lines_dev = m.lines.upload(lines, n);
    const T* u_dev = m.steps.upload(u, n);
    // The points x_l - u d_l (n, D), for the per-vector layers and the first-layer bias.
    T* points = m.theta.reserve(size_t(n) * D);
    line_points<<<grid_for(n * D), kThreads>>>(x_.get(), d_.get(), 0, lines_dev, u_dev, 1, n, D,
                                               points, n * D);
    const int64_t C = m.chunk_rows(N, n * m.widest);
    m.reserve(n, C, false);
    const typename Impl::Vectors v{points, n, nullptr, T(math::mean_factor(m.spec, N))};
    T* a1 = m.a1.get();
    for (int64_t r0 = 0; r0 < N; r0 += C) {
      const int nc = int(std::min<int64_t>(C, N - r0));
      // First layers a1 (nc, n*h1): A[:, l] - u B[:, l] for the chunk's rows.
      line_points<<<grid_for(int64_t(nc) * n * h1), kThreads>>>(
          A_.get() + r0 * ld, B_.get() + r0 * ld, ld, lines_dev, u_dev, nc, n, h1, a1, n * h1);
      m.layers(v, m.dataset_rows(r0, nc), a1);
    }
    m.read_losses(n, N, loss, nullptr);
  }

 private:
  static constexpr double kBudgetBytes = double(int64_t(8) << 30);
  Impl& m_;
  int64_t P_ = 0;  // prepared lines (0: none)
  DeviceBuffer<T> x_, d_;  // (P, D)
  DeviceBuffer<T> A_, B_;  // (n, P*h1)
};

template <typename T>
std::unique_ptr<LineEvaluator<T>> CudaLandscape<T>::line_evaluator() const {
  if (reduced_) return reduced_->line_evaluator();
  return std::make_unique<Lines>(*impl_);
}

// ------------------------------------------------------------------ basis combinations

template <typename T>
void CudaLandscape<T>::evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                                            const int32_t* index, const T* coef, int nnz,
                                            T* loss_out, const T* proj, int64_t K,
                                            T* proj_grad, const int64_t* samples,
                                            int64_t n_samples, T* acc_out) const {
  if (reduced_)
    return reduced_->evaluate_combination(points, P, V, Q, index, coef, nnz, loss_out, proj, K,
                                          proj_grad, samples, n_samples, acc_out);
  Impl& m = *impl_;
  math::check_vectors(points, P, m.h1);
  if (samples) math::check_samples(samples, n_samples, m.n);
  if (!V || !index || !coef) throw std::invalid_argument("basis: need V, index and coef");
  math::check_combination(P, Q, index, nnz);
  const bool want_grad = proj && proj_grad && K > 0;
  if (Q * m.h1 > kIntMax || (want_grad && K * m.h1 > kIntMax))
    throw std::invalid_argument("basis: too many vectors for one call");
  std::lock_guard<std::mutex> lock(m.mutex);
  m.use_device();
  const int d0 = m.d0, h1 = m.h1;
  const int64_t D = m.D, W1 = m.W1, N = samples ? n_samples : m.n, width1 = P * h1,
                wq = Q * h1, wk = K * h1;
  cublasHandle_t h = m.handle;
  const T* basis = m.basis.upload(V, size_t(Q) * D);
  const int32_t* index_dev = m.index.upload(index, size_t(P) * nnz);
  const int64_t* idx = samples ? m.idx.upload(samples, N) : nullptr;
  const T* coef_dev = m.coef.upload(coef, size_t(P) * nnz);
  // The points sum_k coef[p, k] V[index[p, k]] (P, D), formed here.
  T* pts = m.theta.reserve(size_t(P) * D);
  combine<<<grid_for(P * D), kThreads>>>(basis, 0, index_dev, coef_dev, nnz, 1, P, D, pts,
                                         P * D);
  // The basis vectors' first layers (Q*h1, d0).
  m.first_layers(basis, Q, m.w1.reserve(size_t(Q) * W1));
  const int64_t C = m.chunk_rows(N, P * m.widest + wq + (want_grad ? wk : 0));
  m.reserve(P, C, want_grad);
  T* y = m.basis_rows.reserve(size_t(C) * wq);
  const T* proj_dev = nullptr;
  if (want_grad) {
    proj_dev = m.proj.upload(proj, size_t(P) * K);
    m.grad.zeros(size_t(P) * D);
    m.dw1.reserve(size_t(K) * W1);
    m.proj_delta.reserve(size_t(C) * wk);
  }
  const typename Impl::Vectors v{pts, P, want_grad ? m.grad.get() : nullptr,
                                 T(math::mean_factor(m.spec, N))};
  T* a1 = m.a1.get();
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int nc = int(std::min<int64_t>(C, N - r0));
    const typename Impl::Rows rows = m.shared_rows(idx, r0, nc);
    // The Q basis products y (nc, Q*h1) = X V1^T, then each point's combination of
    // them: a1 (nc, P*h1).
    check(gemm(h, false, true, nc, int(wq), d0, T(1), rows.x, d0, m.w1.get(), d0, T(0), y,
               int(wq)), "basis products");
    combine<<<grid_for(int64_t(nc) * width1), kThreads>>>(y, wq, index_dev, coef_dev, nnz, nc, P,
                                                          h1, a1, width1);
    m.layers(v, rows, a1);
    if (!want_grad) continue;
    // The first-layer deltas projected, (nc, K*h1), then one product:
    // dW1proj (K*h1, d0) += delta_proj^T (K*h1, nc) X (nc, d0).
    T* dp = m.proj_delta.get();
    project_deltas<<<grid_for(int64_t(nc) * wk), kThreads>>>(a1, P, proj_dev, K, nc, h1, dp);
    check(gemm(h, true, false, int(wk), d0, nc, T(1), dp, int(wk), rows.x, d0,
               r0 == 0 ? T(0) : T(1), m.dw1.get(), d0), "projected first-layer gradient");
  }
  m.read_losses(P, N, loss_out, acc_out);
  if (!want_grad) return;
  // proj_grad (K, D): the projected first-layer weights, and for every other
  // parameter proj^T (K, P) x grad[:, W1:] (P, D - W1).
  T* pg = m.proj_grad.reserve(size_t(K) * D);
  m.place_first_layers(m.dw1.get(), K, pg);
  if (D > W1)
    check(gemm(h, true, false, int(K), int(D - W1), int(P), T(1), proj_dev, int(K),
               m.grad.get() + W1, int(D), T(0), pg + W1, int(D)), "projected gradient");
  check(cudaGetLastError(), "kernels");
  m.proj_grad.download(proj_grad, size_t(K) * D);
}

// ------------------------------------------------------------------ Hessian-vector products

template <typename T>
void CudaLandscape<T>::hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P,
                                      T* hv_out, T* loss_out, T* grad_out,
                                      const int64_t* samples, int64_t n_samples) const {
  if (reduced_)
    return reduced_->hessian_vector(theta, Pt, v, P, hv_out, loss_out, grad_out, samples, n_samples);
  Impl& m = *impl_;
  math::check_vectors(theta, Pt, m.h1);
  math::check_vectors(v, P, m.h1);
  if (Pt != 1 && Pt != P)
    throw std::invalid_argument("theta: expected one point or one per direction (" +
                                std::to_string(P) + "), got " + std::to_string(Pt));
  if (!hv_out) throw std::invalid_argument("hv: need an output array");
  if (samples) math::check_samples(samples, n_samples, m.n);
  std::lock_guard<std::mutex> lock(m.mutex);
  m.use_device();
  // Full FP32 products here: TF32's 1e-3 would swamp the curvature measures'
  // tolerances. The handle's mode is restored however the call ends.
  struct MathMode {
    cublasHandle_t h;
    bool tf32;
    ~MathMode() {
      if (tf32) cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    }
  } mode{m.handle, m.tf32};
  if (m.tf32) check(cublasSetMathMode(m.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  const MLPSpec& s = m.spec;
  const int L = m.L, d0 = m.d0, h1 = m.h1, dout = m.dout, iP = int(P);
  const int64_t D = m.D, W1 = m.W1, N = samples ? n_samples : m.n, width1 = P * h1;
  cublasHandle_t h = m.handle;
  // The point of each direction (a single point repeated) and the directions.
  T* pts = m.theta.reserve(size_t(P) * D);
  if (Pt == P) {
    check(cudaMemcpy(pts, theta, sizeof(T) * P * D, cudaMemcpyHostToDevice), "copy to device");
  } else {
    check(cudaMemcpy(pts, theta, sizeof(T) * D, cudaMemcpyHostToDevice), "copy to device");
    for (int64_t p = 1; p < P; ++p)
      check(cudaMemcpy(pts + p * D, pts, sizeof(T) * D, cudaMemcpyDeviceToDevice), "repeat point");
  }
  const T* dirs = m.dirs.upload(v, size_t(P) * D);
  const int64_t* idx = samples ? m.idx.upload(samples, N) : nullptr;
  m.first_layers(pts, P, m.w1.reserve(size_t(P) * W1));
  m.first_layers(dirs, P, m.vw1.reserve(size_t(P) * W1));
  const int64_t C = m.chunk_rows(N, P * m.widest);
  m.reserve(P, C, true);
  m.grad.zeros(size_t(P) * D);
  if (grad_out) m.dw1.reserve(size_t(P) * W1);
  T* hv = m.hv.zeros(size_t(P) * D);
  T* hw1 = m.hw1.reserve(size_t(P) * W1);
  T* a1p = m.a1.get();
  T* a1o = m.a1_out.reserve(size_t(C) * width1);
  T* rz1 = m.rz1.reserve(size_t(C) * width1);
  T* ra1 = m.ra1.reserve(size_t(C) * width1);
  T* rd1 = m.rd1.reserve(size_t(C) * width1);
  for (int l = 1; l < L; ++l) {
    const size_t sz = size_t(P) * C * s.sizes[l + 1];
    m.rz[l].reserve(sz);
    m.ra[l].reserve(sz);
    m.rd[l].reserve(sz);
  }
  const T scale = T(math::mean_factor(s, N));
  const typename Impl::Vectors vec{pts, P, m.grad.get(), scale};
  const T* ones = m.ones.get();
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int nc = int(std::min<int64_t>(C, N - r0));
    const typename Impl::Rows rows = m.shared_rows(idx, r0, nc);
    // A block of layer l for the chunk: (pointer, leading dimension, stride between
    // the P vectors). Layer 0 lives in the (nc, P*h1) buffers, the others in (P, nc, out).
    struct Block {
      T* p;
      int64_t ld, st;
    };
    auto block = [&](int l, T* first, DeviceBuffer<T>& later) {
      return l == 0 ? Block{first, width1, h1}
                    : Block{later.get(), s.sizes[l + 1], int64_t(nc) * s.sizes[l + 1]};
    };
    auto act = [&](int l) { return block(l, a1o, m.acts[l]); };
    auto del = [&](int l) { return block(l, a1p, m.deltas[l]); };
    auto Rz = [&](int l) { return block(l, rz1, m.rz[l]); };
    auto Ra = [&](int l) { return block(l, ra1, m.ra[l]); };
    auto Rd = [&](int l) { return block(l, rd1, m.rd[l]); };

    // Forward and plain backward of every point (a1 ends holding the first layer's
    // deltas, hence the first layer's outputs again in a1_out).
    check(gemm(h, false, true, nc, int(width1), d0, T(1), rows.x, d0, m.w1.get(), d0, T(0), a1p,
               int(width1)), "first layer");
    check(cudaMemcpy(a1o, a1p, sizeof(T) * nc * width1, cudaMemcpyDeviceToDevice),
          "first layer copy");
    if (s.bias || s.activation(0) != Activation::Identity)
      bias_activate<<<grid_for(int64_t(nc) * width1), kThreads>>>(
          a1o, nc, h1, width1, h1, P, s.bias ? pts + m.boff[0] : nullptr, D, s.activation(0));
    m.layers(vec, rows, a1p);
    if (grad_out)
      check(gemm(h, true, false, int(width1), d0, nc, T(1), a1p, int(width1), rows.x, d0,
                 r0 == 0 ? T(0) : T(1), m.dw1.get(), d0), "first-layer weight gradient");

    // R-forward: R{z1} = X V1^T + vb1, then through the later layers.
    check(gemm(h, false, true, nc, int(width1), d0, T(1), rows.x, d0, m.vw1.get(), d0, T(0), rz1,
               int(width1)), "first layer of the directions");
    if (s.bias)
      bias_activate<<<grid_for(int64_t(nc) * width1), kThreads>>>(
          rz1, nc, h1, width1, h1, P, dirs + m.boff[0], D, Activation::Identity);
    apply_derivative<<<grid_for(int64_t(nc) * width1), kThreads>>>(ra1, rz1, a1o, nc, h1, width1,
                                                                   h1, P, s.activation(0));
    for (int l = 1; l < L; ++l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      const Block z = Rz(l), ra_in = Ra(l - 1), a_in = act(l - 1);
      check(gemm_batched(h, false, true, nc, out, in, T(1), ra_in.p, int(ra_in.ld), ra_in.st,
                         pts + m.woff[l], in, D, T(0), z.p, int(z.ld), z.st, iP), "R forward");
      check(gemm_batched(h, false, true, nc, out, in, T(1), a_in.p, int(a_in.ld), a_in.st,
                         dirs + m.woff[l], in, D, T(1), z.p, int(z.ld), z.st, iP), "R forward");
      if (s.bias)
        bias_activate<<<grid_for(int64_t(nc) * out * P), kThreads>>>(
            z.p, nc, out, z.ld, z.st, P, dirs + m.boff[l], D, Activation::Identity);
      apply_derivative<<<grid_for(int64_t(nc) * out * P), kThreads>>>(
          Ra(l).p, z.p, act(l).p, nc, out, z.ld, z.st, P, s.activation(l));
    }
    {
      const Block o = act(L - 1);
      output_rop<<<grid_for(int64_t(nc) * P), kThreads>>>(o.p, del(L - 1).p, Rz(L - 1).p,
                                                          Rd(L - 1).p, o.ld, o.st, nc, dout, P,
                                                          s.loss, s.output, scale);
    }
    // R-backward: the products' later layers, and R{delta} down to the first layer.
    for (int l = L - 1; l >= 1; --l) {
      const int in = s.sizes[l], out = s.sizes[l + 1];
      const Block rd = Rd(l), d = del(l), a_in = act(l - 1), ra_in = Ra(l - 1), prev = Rd(l - 1);
      check(gemm_batched(h, true, false, out, in, nc, T(1), rd.p, out, rd.st, a_in.p,
                         int(a_in.ld), a_in.st, T(1), hv + m.woff[l], in, D, iP), "R weights");
      check(gemm_batched(h, true, false, out, in, nc, T(1), d.p, out, d.st, ra_in.p,
                         int(ra_in.ld), ra_in.st, T(1), hv + m.woff[l], in, D, iP), "R weights");
      if (s.bias)
        check(gemm_batched(h, false, false, 1, out, nc, T(1), ones, nc, 0, rd.p, out, rd.st, T(1),
                           hv + m.boff[l], out, D, iP), "R bias");
      check(gemm_batched(h, false, false, nc, in, out, T(1), rd.p, out, rd.st, pts + m.woff[l],
                         in, D, T(0), prev.p, int(prev.ld), prev.st, iP), "R delta");
      check(gemm_batched(h, false, false, nc, in, out, T(1), d.p, out, d.st, dirs + m.woff[l],
                         in, D, T(1), prev.p, int(prev.ld), prev.st, iP), "R delta");
      r_delta<<<grid_for(int64_t(nc) * in * P), kThreads>>>(prev.p, act(l - 1).p, del(l - 1).p,
                                                            Rz(l - 1).p, nc, in, prev.ld,
                                                            prev.st, P, s.activation(l - 1));
    }
    if (s.bias)
      check(gemm_batched(h, false, false, 1, h1, nc, T(1), ones, nc, 0, rd1, int(width1), h1,
                         T(1), hv + m.boff[0], h1, D, iP), "R first-layer bias");
    check(gemm(h, true, false, int(width1), d0, nc, T(1), rd1, int(width1), rows.x, d0,
               r0 == 0 ? T(0) : T(1), hw1, d0), "R first-layer weights");
  }
  m.place_first_layers(hw1, P, hv);
  check(cudaGetLastError(), "kernels");
  m.hv.download(hv_out, size_t(P) * D);
  std::vector<T> losses(P);
  m.read_losses(P, N, losses.data(), nullptr);
  if (loss_out) std::copy(losses.begin(), losses.begin() + Pt, loss_out);
  if (grad_out) {
    m.place_first_layers(m.dw1.get(), P, m.grad.get());
    check(cudaMemcpy(grad_out, m.grad.get(), sizeof(T) * Pt * D, cudaMemcpyDeviceToHost),
          "copy to host");
  }
}

template class CudaLandscape<float>;
template class CudaLandscape<double>;

}  // namespace losstopo
