// Linear mixes of the blocks of a row: the first layer's share of evaluating
// combinations of vectors and points on lines (landscape.cpp). For every row i of a
// chunk and every output block r < R (width h),
//   out[i, r, :] = sum_{k < nnz} coef[r, k] in[i, idx[r, k], :]
// where in[i, q, :] is the q-th width-h block of row i (idx null: idx[r, k] = k): the
// points' first layers from the basis vectors' products (coef: the points'
// coefficients), and the points' first-layer deltas projected (coef: the projection,
// transposed). Vectorized for the level isa::chosen() gives (mix.cpp); each output is
// the same sum in the same order for any row count, chunking or thread.
#pragma once

#include <cstdint>

#include "isa.hpp"

namespace losstopo::mix {

template <typename T>
struct Job {
  int64_t rows;
  int h, R, nnz;
  const int32_t* idx;  // (R, nnz) block indices, or null
  const T* coef;       // (R, nnz)
  const T* in;         // rows of stride ld_in
  int64_t ld_in;
  T* out;              // rows of stride ld_out (not overlapping in)
  int64_t ld_out;
};

void run(isa::Level level, const Job<float>& job);
void run(isa::Level level, const Job<double>& job);

// Points on lines: out[i, p, :] = a[i, cols[p] h + :] - u[p] b[i, cols[p] h + :] for
// p < P, a and b of row stride ld_ab. out may be the block of a it reads (an update in
// place), not another part of a or b.
template <typename T>
struct LineJob {
  int64_t rows;
  int h, P;
  const int64_t* cols;
  const T* u;
  const T *a, *b;
  int64_t ld_ab;
  T* out;
  int64_t ld_out;
};

void run(isa::Level level, const LineJob<float>& job);
void run(isa::Level level, const LineJob<double>& job);

}  // namespace losstopo::mix
