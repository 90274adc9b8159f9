// The sparse rows of sparse_rows.hpp: sparse_rows_impl.inc compiled once per
// instruction set, each copy in its own namespace with internal linkage, and the
// compressions (plain loops: a pass over the nonzeros).
#include "sparse_rows.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace losstopo::sparse {
namespace {

#define LT_KERNEL_FILE "sparse_rows_impl.inc"
#include "isa_variants.inc"
#undef LT_KERNEL_FILE

template <typename J>
void dispatch(isa::Level level, const J& job) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(job.out)>>;
  switch (level) {
#if LT_X86
    case isa::Level::Avx512: avx512::SparseRows<T>::run(job); return;
    case isa::Level::Avx2: avx2::SparseRows<T>::run(job); return;
#endif
    default: scalar::SparseRows<T>::run(job); return;
  }
}

}  // namespace

void run(isa::Level level, const Job<float>& job) { dispatch(level, job); }
void run(isa::Level level, const Job<double>& job) { dispatch(level, job); }
void run(isa::Level level, const PanelJob<float>& job) { dispatch(level, job); }
void run(isa::Level level, const PanelJob<double>& job) { dispatch(level, job); }

// Two passes over x in row order: the entries each group needs, then their values.
template <typename T>
void panels(const T* x, int64_t rows, int64_t cols, int64_t ld, bool columns, Panels<T>& out) {
  const int64_t R = kPanel;
  const int64_t prows = columns ? cols : rows;  // the panels' rows
  const int64_t groups = (prows + R - 1) / R;
  out.rows = prows;
  out.ptr.assign(groups + 1, 0);
  if (!columns) {
    for (int64_t g = 0; g < groups; ++g) {
      const T* xg = x + g * R * ld;
      const int64_t nr = std::min(R, rows - g * R);
      int64_t n = 0;
      for (int64_t c = 0; c < cols; ++c) {
        bool any = false;
        for (int64_t r = 0; r < nr; ++r) any |= xg[r * ld + c] != T(0);
        n += any;
      }
      out.ptr[g + 1] = out.ptr[g] + n;
    }
    out.idx.resize(out.ptr[groups]);
    out.val.assign(out.ptr[groups] * R, T(0));
    for (int64_t g = 0; g < groups; ++g) {
      const T* xg = x + g * R * ld;
      const int64_t nr = std::min(R, rows - g * R);
      int64_t k = out.ptr[g];
      for (int64_t c = 0; c < cols; ++c) {
        bool any = false;
        for (int64_t r = 0; r < nr; ++r) any |= xg[r * ld + c] != T(0);
        if (!any) continue;
        out.idx[k] = int32_t(c);
        for (int64_t r = 0; r < nr; ++r) out.val[k * R + r] = xg[r * ld + c];
        ++k;
      }
    }
    return;
  }
  // Columns: group g holds columns [g R, g R + R); its entries are the rows (in
  // order) where any of them is nonzero.
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * ld;
    for (int64_t g = 0; g < groups; ++g) {
      bool any = false;
      for (int64_t c = g * R; c < std::min(cols, g * R + R); ++c) any |= xi[c] != T(0);
      out.ptr[g + 1] += any;
    }
  }
  for (int64_t g = 0; g < groups; ++g) out.ptr[g + 1] += out.ptr[g];
  out.idx.resize(out.ptr[groups]);
  out.val.assign(out.ptr[groups] * R, T(0));
  std::vector<int64_t> next(out.ptr.begin(), out.ptr.end() - 1);
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * ld;
    for (int64_t g = 0; g < groups; ++g) {
      bool any = false;
      const int64_t c1 = std::min(cols, g * R + R);
      for (int64_t c = g * R; c < c1; ++c) any |= xi[c] != T(0);
      if (!any) continue;
      const int64_t k = next[g]++;
      out.idx[k] = int32_t(i);
      for (int64_t c = g * R; c < c1; ++c) out.val[k * R + (c - g * R)] = xi[c];
    }
  }
}

template <typename T>
void compress(const T* x, int64_t rows, int64_t cols, int64_t ld, Block<T>& out) {
  out.cols = cols;
  out.ptr.resize(rows + 1);
  out.idx.clear();
  out.val.clear();
  out.ptr[0] = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* r = x + i * ld;
    for (int64_t c = 0; c < cols; ++c)
      if (r[c] != T(0)) {
        out.idx.push_back(int32_t(c));
        out.val.push_back(r[c]);
      }
    out.ptr[i + 1] = int64_t(out.idx.size());
  }
}

template <typename T>
void transpose(const Rows<T>& a, int64_t cols, Block<T>& out) {
  const int64_t nnz = a.rows ? a.ptr[a.rows] - a.ptr[0] : 0;
  out.cols = a.rows;
  out.ptr.assign(cols + 1, 0);
  out.idx.resize(nnz);
  out.val.resize(nnz);
  for (int64_t k = a.ptr[0]; k < a.ptr[0] + nnz; ++k) ++out.ptr[a.idx[k] + 1];
  for (int64_t c = 0; c < cols; ++c) out.ptr[c + 1] += out.ptr[c];
  std::vector<int64_t> next(out.ptr.begin(), out.ptr.end() - 1);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t k = a.ptr[i]; k < a.ptr[i + 1]; ++k) {
      const int64_t at = next[a.idx[k]]++;
      out.idx[at] = int32_t(i);
      out.val[at] = a.val[k];
    }
}

template void compress<float>(const float*, int64_t, int64_t, int64_t, Block<float>&);
template void compress<double>(const double*, int64_t, int64_t, int64_t, Block<double>&);
template void panels<float>(const float*, int64_t, int64_t, int64_t, bool, Panels<float>&);
template void panels<double>(const double*, int64_t, int64_t, int64_t, bool, Panels<double>&);
template void transpose<float>(const Rows<float>&, int64_t, Block<float>&);
template void transpose<double>(const Rows<double>&, int64_t, Block<double>&);

}  // namespace losstopo::sparse
