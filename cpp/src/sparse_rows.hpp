// Products of a sparse block of rows with a dense block: the first layer's share of
// a pass when its inputs are mostly zeros (MNIST: 19% nonzero pixels). For every row
// i < rows of a compressed block A (row i's nonzeros val[ptr[i] .. ptr[i+1]) in the
// columns idx[...]) and the dense block B (rows of stride ld_b, m columns used),
//   out[i, :m] = (accumulate ? out[i, :m] : 0) + sum_k val[k] B[idx[k], :m].
// The forward product X W^T is this with A = the inputs' rows and B = W^T; the weight
// gradient delta^T X is it with A = the inputs' columns (the block transposed) and
// B = the deltas. Each output is the same sum in the same order whatever the row
// count or the caller's chunking. Vectorized for the level isa::chosen() gives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "isa.hpp"

namespace losstopo::sparse {

// A block of rows in compressed sparse row form.
template <typename T>
struct Rows {
  int64_t rows = 0;
  const int64_t* ptr = nullptr;  // (rows + 1)
  const int32_t* idx = nullptr;  // (ptr[rows]) column of each nonzero
  const T* val = nullptr;        // (ptr[rows])
};

template <typename T>
struct Job {
  Rows<T> a;
  const T* b;  // rows of stride ld_b, one per column of a
  int64_t ld_b;
  int64_t m;   // columns of b and out
  T* out;      // (a.rows, m), rows of stride ld_out
  int64_t ld_out;
  bool accumulate;
};

void run(isa::Level level, const Job<float>& job);
void run(isa::Level level, const Job<double>& job);

// A compressed block that owns its arrays.
template <typename T>
struct Block {
  std::vector<int64_t> ptr;
  std::vector<int32_t> idx;
  std::vector<T> val;
  int64_t cols = 0;
  Rows<T> view() const {
    return Rows<T>{int64_t(ptr.size()) - 1, ptr.data(), idx.data(), val.data()};
  }
};

// Panels: rows taken R at a time (R = kPanel; the last group may be short), each group
// holding the columns where any of its rows is nonzero and there the R values (zeros
// included): entry k of group g is column idx[k] with values val[k R .. k R + R),
// k in [ptr[g], ptr[g+1]). Each column loaded from the dense block then serves R
// rows. A row's sum runs over its group's columns in increasing order; the extra
// terms are exact zeros (0 b), which leave a sum of finite numbers unchanged, so the
// outputs are bitwise those of the rows taken one at a time.
constexpr int kPanel = 4;

template <typename T>
struct PanelView {
  int64_t rows = 0;              // the groups are (rows + kPanel - 1) / kPanel
  const int64_t* ptr = nullptr;  // (groups + 1) offsets into idx and val / kPanel
  const int32_t* idx = nullptr;
  const T* val = nullptr;
};

template <typename T>
struct Panels {
  int64_t rows = 0;
  std::vector<int64_t> ptr;  // (groups + 1)
  std::vector<int32_t> idx;
  std::vector<T> val;        // (ptr[groups] kPanel)
  // Rows [r0, r0 + rows) of the panels, r0 a multiple of kPanel and the range
  // ending on a group's end or at the last row.
  PanelView<T> view(int64_t r0, int64_t rows) const {
    return PanelView<T>{rows, ptr.data() + r0 / kPanel, idx.data(), val.data()};
  }
  PanelView<T> view() const { return view(0, this->rows); }
};

template <typename T>
struct PanelJob {
  PanelView<T> a;
  const T* b;
  int64_t ld_b;
  int64_t m;
  T* out;
  int64_t ld_out;
  bool accumulate;
};

void run(isa::Level level, const PanelJob<float>& job);
void run(isa::Level level, const PanelJob<double>& job);

// The panels of the dense rows x (rows, cols; row stride ld); with `columns`, of its
// columns instead (the block transposed: `rows` panels rows are x's columns).
template <typename T>
void panels(const T* x, int64_t rows, int64_t cols, int64_t ld, bool columns, Panels<T>& out);

// The nonzeros of the dense rows x (rows, cols; row stride ld), row by row.
template <typename T>
void compress(const T* x, int64_t rows, int64_t cols, int64_t ld, Block<T>& out);

// The block transposed (its columns as rows), in the same row order within each
// column: the compressed form of the columns of the rows `a` with `cols` columns.
template <typename T>
void transpose(const Rows<T>& a, int64_t cols, Block<T>& out);

// w (m, d0) transposed, (d0, m): a dense block as the products read it (B = W^T).
template <typename T>
std::vector<T> transposed(const T* w, int64_t m, int64_t d0) {
  std::vector<T> wt(static_cast<std::size_t>(m * d0));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < d0; ++j) wt[j * m + r] = w[r * d0 + j];
  return wt;
}

// g (m, d0) = gt (d0, m) transposed back: a weight gradient formed from the columns.
template <typename T>
void transpose_back(const T* gt, int64_t m, int64_t d0, T* g) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < d0; ++j) g[r * d0 + j] = gt[j * m + r];
}

}  // namespace losstopo::sparse
