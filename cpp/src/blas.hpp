// Minimal declarations of the BLAS routines the engine uses. The symbols carry a
// prefix (scipy-openblas32 exports scipy_cblas_sgemm, ...), set at build time by
// LOSSTOPO_BLAS_PREFIX.
#pragma once

#ifndef LOSSTOPO_BLAS_PREFIX
#define LOSSTOPO_BLAS_PREFIX scipy_
#endif
#define LOSSTOPO_PASTE2(a, b) a##b
#define LOSSTOPO_PASTE(a, b) LOSSTOPO_PASTE2(a, b)
#define LOSSTOPO_BLAS(name) LOSSTOPO_PASTE(LOSSTOPO_BLAS_PREFIX, name)

extern "C" {
void LOSSTOPO_BLAS(cblas_sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha,
                                const float* a, int lda, const float* b, int ldb, float beta,
                                float* c, int ldc);
void LOSSTOPO_BLAS(cblas_dgemm)(int order, int ta, int tb, int m, int n, int k, double alpha,
                                const double* a, int lda, const double* b, int ldb, double beta,
                                double* c, int ldc);
void LOSSTOPO_BLAS(openblas_set_num_threads)(int num_threads);
int LOSSTOPO_BLAS(openblas_get_num_threads)(void);
char* LOSSTOPO_BLAS(openblas_get_corename)(void);
}

namespace losstopo::blas {

enum Trans { N = 111, T = 112 };
constexpr int kRowMajor = 101;

// Row-major C (m x n) = alpha op(A) op(B) + beta C.
inline void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  LOSSTOPO_BLAS(cblas_sgemm)(kRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(Trans ta, Trans tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  LOSSTOPO_BLAS(cblas_dgemm)(kRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The engine threads over sample chunks itself and runs BLAS single-threaded
// inside; this guard sets OpenBLAS to one thread for its lifetime.
class SingleThreaded {
 public:
  SingleThreaded() : prev_(LOSSTOPO_BLAS(openblas_get_num_threads)()) {
    if (prev_ != 1) LOSSTOPO_BLAS(openblas_set_num_threads)(1);
  }
  ~SingleThreaded() {
    if (prev_ != 1) LOSSTOPO_BLAS(openblas_set_num_threads)(prev_);
  }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int prev_;
};

}  // namespace losstopo::blas
