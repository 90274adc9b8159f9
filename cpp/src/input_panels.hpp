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

  // gt (d0, m) = (first) or += delta^T X over rows [r0, r0 + nc), r0 on a block, for
  // deltas (nc, m; row stride ld): the blocks' column panels in turn.
  void gradient(isa::Level level, int64_t r0, int64_t nc, const T* delta, int64_t ld,
                int64_t m, T* gt, bool first) const {
    for (int64_t at = 0; at < nc; at += kBlock)
      sparse::run(level, sparse::PanelJob<T>{columns[(r0 + at) / kBlock].view(),
                                             delta + at * ld, ld, m, gt, m, !first || at > 0});
  }
};

}  // namespace losstopo
