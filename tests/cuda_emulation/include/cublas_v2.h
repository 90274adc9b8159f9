// Stand-in for the cuBLAS calls that cuda/landscape.cu uses, for the CPU emulation
// (tests/cuda_emulation/README.md): plain loops in column-major order with cuBLAS's
// argument conventions and checks (m, n, k >= 0, lda >= max(1, rows of op(A)), ...;
// CUBLAS_STATUS_INVALID_VALUE otherwise), a strided batch as `count` products at
// fixed strides, beta == 0 not reading C (it may hold anything), and every matrix's
// extent checked to lie in device memory. The sums run in T in index order, so the
// results are close to cuBLAS's, not equal to them; the math mode (TF32) is ignored.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

typedef struct EmuCublasContext* cublasHandle_t;
enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  static int context;
  *h = reinterpret_cast<cublasHandle_t>(&context);
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) {
  return CUBLAS_STATUS_SUCCESS;
}

namespace emu {

inline cublasStatus_t invalid(const std::string& what) {
  fail(cudaErrorInvalidValue, what);
  return CUBLAS_STATUS_INVALID_VALUE;
}

// Whether the (rows x cols) column-major matrices at p + b * stride, b < count, with
// leading dimension ld lie in device memory.
template <typename T>
bool matrices_on_device(const T* p, long long rows, long long cols, long long ld,
                        long long stride, long long count) {
  if (rows == 0 || cols == 0 || count == 0) return true;
  const T* first = stride < 0 ? p + (count - 1) * stride : p;
  const long long extent = (rows - 1) + (cols - 1) * ld + (count - 1) * (stride < 0 ? -stride : stride) + 1;
  return on_device(first, size_t(extent) * sizeof(T));
}

// C_b (m x n) = alpha op(A_b) op(B_b) + beta C_b for b < count (column-major).
template <typename T>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const T* alpha, const T* A, int lda, long long sa, const T* B, int ldb,
                    long long sb, const T* beta, T* C, int ldc, long long sc, int count) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (m < 0 || n < 0 || k < 0 || count < 0 || lda < std::max(1, a_rows) ||
      ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return invalid("gemm: invalid value m=" + std::to_string(m) + " n=" + std::to_string(n) +
                   " k=" + std::to_string(k) + " lda=" + std::to_string(lda) +
                   " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) +
                   " count=" + std::to_string(count));
  ++counters.gemms;
  if (m == 0 || n == 0 || count == 0) return CUBLAS_STATUS_SUCCESS;
  const bool use_ab = k > 0 && *alpha != T(0);
  if ((use_ab && (!matrices_on_device(A, a_rows, ta == CUBLAS_OP_N ? k : m, lda, sa, count) ||
                  !matrices_on_device(B, b_rows, tb == CUBLAS_OP_N ? n : k, ldb, sb, count))) ||
      !matrices_on_device(C, m, n, ldc, sc, count))
    return invalid("gemm: a matrix outside device memory");
  for (int b = 0; b < count; ++b) {
    const T* a = A + b * sa;
    const T* bb = B + b * sb;
    T* c = C + b * sc;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        T s = T(0);
        for (int l = 0; l < k; ++l) {
          const T x = ta == CUBLAS_OP_N ? a[i + (long long)l * lda] : a[l + (long long)i * lda];
          const T y = tb == CUBLAS_OP_N ? bb[l + (long long)j * ldb] : bb[j + (long long)l * ldb];
          s += x * y;
        }
        T& out = c[i + (long long)j * ldc];
        out = *beta == T(0) ? *alpha * s : *alpha * s + *beta * out;
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace emu

inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                  int m, int n, int k, const float* alpha, const float* A,
                                  int lda, const float* B, int ldb, const float* beta, float* C,
                                  int ldc) {
  return emu::gemm(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
inline cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                  int m, int n, int k, const double* alpha, const double* A,
                                  int lda, const double* B, int ldb, const double* beta,
                                  double* C, int ldc) {
  return emu::gemm(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
inline cublasStatus_t cublasSgemmStridedBatched(
    cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const float* alpha, const float* A, int lda, long long sa, const float* B, int ldb,
    long long sb, const float* beta, float* C, int ldc, long long sc, int count) {
  return emu::gemm(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
inline cublasStatus_t cublasDgemmStridedBatched(
    cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const double* alpha, const double* A, int lda, long long sa, const double* B, int ldb,
    long long sb, const double* beta, double* C, int ldc, long long sc, int count) {
  return emu::gemm(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}

// y = alpha op(A) x + beta y, A (m x n) column-major, unit increments only.
inline cublasStatus_t cublasDgemv(cublasHandle_t h, cublasOperation_t t, int m, int n,
                                  const double* alpha, const double* A, int lda, const double* x,
                                  int incx, const double* beta, double* y, int incy) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || lda < std::max(1, m) || incx == 0 || incy == 0)
    return emu::invalid("gemv: invalid value m=" + std::to_string(m) + " n=" + std::to_string(n) +
                        " lda=" + std::to_string(lda));
  if (incx != 1 || incy != 1) return emu::invalid("gemv: only unit increments are emulated");
  const int ny = t == CUBLAS_OP_N ? m : n, nx = t == CUBLAS_OP_N ? n : m;
  if (ny == 0) return CUBLAS_STATUS_SUCCESS;
  if ((nx > 0 && (!emu::matrices_on_device(A, m, n, lda, 0, 1) ||
                  !emu::matrices_on_device(x, nx, 1, nx, 0, 1))) ||
      !emu::matrices_on_device(y, ny, 1, ny, 0, 1))
    return emu::invalid("gemv: an operand outside device memory");
  ++emu::counters.gemms;
  for (int i = 0; i < ny; ++i) {
    double s = 0;
    for (int l = 0; l < nx; ++l)
      s += (t == CUBLAS_OP_N ? A[i + (long long)l * lda] : A[l + (long long)i * lda]) * x[l];
    y[i] = *beta == 0 ? *alpha * s : *alpha * s + *beta * y[i];
  }
  return CUBLAS_STATUS_SUCCESS;
}
