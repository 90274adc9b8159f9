// What the CPU engine's passes (landscape.cpp, hessian.cpp) share: how a pass over N
// samples is cut into chunks for the threads, and the elementwise operations on
// row-major blocks (rows x n, leading dimension ld) between their products.
#pragma once

#include <algorithm>
#include <cstdint>

#include "network_math.hpp"

namespace losstopo::blocks {

// The chunks of a pass over N samples, C per chunk; balanced over the nt threads (a
// multiple of nt chunks of nearly equal size) unless the chunk size is fixed; C then
// rounded up to a multiple of `multiple` (chunks starting on a group of rows).
struct Split {
  int64_t C, nchunks;
  int nt;
};

inline Split split_samples(int64_t N, int64_t C, int nt, bool balance, int64_t multiple = 1) {
  C = std::min<int64_t>(C, N);
  if (balance) {
    int64_t k = (N + C - 1) / C;
    k = std::min<int64_t>(N, (k + nt - 1) / nt * nt);
    C = (N + k - 1) / k;
  }
  if (multiple > 1 && C < N) C = std::min<int64_t>(N, (C + multiple - 1) / multiple * multiple);
  const int64_t nchunks = (N + C - 1) / C;
  return {C, nchunks, int(std::max<int64_t>(1, std::min<int64_t>(nt, nchunks)))};
}

// x = act(x) for n values; the activation is a compile-time constant in the loop.
template <typename T>
void activate(Activation a, T* x, int64_t n) {
  math::dispatch(a, [&](auto tag) {
    constexpr Activation A = decltype(tag)::value;
    if constexpr (A != Activation::Identity)
      for (int64_t i = 0; i < n; ++i) x[i] = math::activate<A>(x[i]);
  });
}

// x = act(x) for a (rows x n) block.
template <typename T>
void activate(Activation a, T* x, int64_t ld, int64_t rows, int64_t n) {
  math::dispatch(a, [&](auto tag) {
    constexpr Activation A = decltype(tag)::value;
    if constexpr (A != Activation::Identity)
      for (int64_t i = 0; i < rows; ++i) {
        T* r = x + i * ld;
        for (int64_t j = 0; j < n; ++j) r[j] = math::activate<A>(r[j]);
      }
  });
}

// d[i * ld_d + j] *= act'(a[i * ld_a + j]) for a (rows x n) block.
template <typename T>
void multiply_derivative(Activation act, const T* a, int64_t ld_a, T* d, int64_t ld_d,
                         int64_t rows, int64_t n) {
  math::dispatch(act, [&](auto tag) {
    constexpr Activation A = decltype(tag)::value;
    if constexpr (A != Activation::Identity)
      for (int64_t i = 0; i < rows; ++i) {
        const T* ar = a + i * ld_a;
        T* dr = d + i * ld_d;
        for (int64_t j = 0; j < n; ++j) dr[j] *= math::derivative<A>(ar[j]);
      }
  });
}

// Row-wise c[i, :] += b for a (rows x n) block with leading dimension ld.
template <typename T>
void add_bias(T* c, int64_t ld, int64_t rows, int64_t n, const T* b) {
  for (int64_t i = 0; i < rows; ++i) {
    T* r = c + i * ld;
    for (int64_t j = 0; j < n; ++j) r[j] += b[j];
  }
}

// g[j] += sum_i delta[i, j]
template <typename T>
void add_column_sums(const T* delta, int64_t ld, int64_t rows, int64_t n, T* g) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* r = delta + i * ld;
    for (int64_t j = 0; j < n; ++j) g[j] += r[j];
  }
}

}  // namespace losstopo::blocks
