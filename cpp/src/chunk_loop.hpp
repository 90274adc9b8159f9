// The loop every CPU pass runs (landscape.cpp's forward and backward passes,
// hessian.cpp's Hessian-vector products), written once: the engine's thread count,
// the samples cut into chunks (blocks::Split), each thread taking a contiguous block
// of chunks with BLAS single-threaded inside, each chunk's rows gathered from a sample
// list where there is one, and the threads' partial sums reduced in a fixed order.
// Nothing here depends on P, so results are bitwise the same for a given thread count
// and chunk size.
#pragma once

#include <omp.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "blas.hpp"
#include "denormals.hpp"

namespace losstopo::chunks {

// The engine's threads: the option's, or all OpenMP threads for 0.
inline int thread_count(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// The samples a pass runs over: inputs X (n, d0), labels (n) or targets (n, dout) or
// neither; an autoencoder's targets are its inputs.
template <typename T>
struct Data {
  const T* X;
  const int32_t* labels;
  const T* targets;
  int d0, dout;
  bool mse_on_input;
};

// One thread's buffers for the rows of a chunk gathered from a sample list.
template <typename T>
struct Gather {
  std::vector<T> x, t;
  std::vector<int32_t> y;
  void reserve(const Data<T>& d, int64_t C) {
    x.resize(C * d.d0);
    if (d.labels) y.resize(C);
    if (d.targets) t.resize(C * d.dout);
  }
};

// The rows of one chunk: inputs (n, d0), labels or targets (null where the data has
// none), and the targets' leading dimension.
template <typename T>
struct Rows {
  const T* x;
  const int32_t* y;
  const T* t;
  int64_t ld_t;
};

// Rows r0 .. r0 + nc of the pass: of the data in place, or gathered into g from
// samples[r0 ..] where the pass runs on a sample list.
template <typename T>
Rows<T> rows(const Data<T>& d, const int64_t* samples, int64_t r0, int nc, Gather<T>& g) {
  Rows<T> r{d.X + r0 * d.d0, d.labels ? d.labels + r0 : nullptr,
            d.targets ? d.targets + r0 * d.dout : nullptr, d.dout};
  if (samples) {
    for (int i = 0; i < nc; ++i) {
      const int64_t k = samples[r0 + i];
      std::memcpy(&g.x[int64_t(i) * d.d0], d.X + k * d.d0, sizeof(T) * d.d0);
      if (r.y) g.y[i] = d.labels[k];
      if (r.t) std::memcpy(&g.t[int64_t(i) * d.dout], d.targets + k * d.dout, sizeof(T) * d.dout);
    }
    r.x = g.x.data();
    if (r.y) r.y = g.y.data();
    if (r.t) r.t = g.t.data();
  }
  if (d.mse_on_input) {
    r.t = r.x;
    r.ld_t = d.d0;
  }
  return r;
}

// f(thread, c_begin, c_end) on nt threads: thread t takes chunks
// [nchunks t / nt, nchunks (t + 1) / nt), BLAS single-threaded inside.
template <typename F>
void on_threads(int64_t nchunks, int nt, F&& f) {
  blas::SingleThreaded single_threaded_blas;
#pragma omp parallel num_threads(nt)
  {
    denormals::Flush flush;  // this thread, for this work
    const int t = omp_get_thread_num();
    f(t, nchunks * t / nt, nchunks * (t + 1) / nt);
  }
}

// out[i] = part(0)[i] + part(1)[i] + ... + part(nt - 1)[i] for i < n, in that order.
template <typename T, typename Part>
void sum_in_order(int nt, int64_t n, Part&& part, T* out) {
  for (int64_t i = 0; i < n; ++i) {
    T v = T(0);
    for (int t = 0; t < nt; ++t) v += part(t)[i];
    out[i] = v;
  }
}

}  // namespace losstopo::chunks
