// The inputs' nonzeros as the CPU engine holds them for the sparse first-layer
// products (sparse_rows.hpp), shared by the passes (landscape.cpp) and the
// Hessian-vector products (hessian.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "losstopo/landscape.hpp"
#include "sparse_rows.hpp"

namespace losstopo {

// All samples' rows in panels (the forward products), and the columns of each block of
// kBlock rows in panels (the weight gradients: a chunk of whole blocks reads them).
template <typename T>
struct detail::InputPanels {
  static constexpr int64_t kBlock = 256;
  static_assert(kBlock % sparse::kPanel == 0, "blocks start on the row panels' groups");
  sparse::Panels<T> rows;
  std::vector<sparse::Panels<T>> columns;  // (ceil(n / kBlock))
};

namespace sparse {

// w (m, d0) transposed, (d0, m): the first layers as the sparse products read them.
template <typename T>
std::vector<T> transposed(const T* w, int64_t m, int d0) {
  std::vector<T> wt(size_t(m) * d0);
  for (int64_t r = 0; r < m; ++r)
    for (int j = 0; j < d0; ++j) wt[int64_t(j) * m + r] = w[r * d0 + j];
  return wt;
}

// g (m, d0) = gt (d0, m) transposed back.
template <typename T>
void transpose_back(const T* gt, int64_t m, int d0, T* g) {
  for (int64_t r = 0; r < m; ++r)
    for (int j = 0; j < d0; ++j) g[r * d0 + j] = gt[int64_t(j) * m + r];
}

}  // namespace sparse
}  // namespace losstopo
