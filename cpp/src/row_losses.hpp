// The output loss of a block of float rows, vectorized (math::row_loss's two losses
// for the CPU engine's common output layers). The loss does not depend on whether the
// deltas are asked for (the same bits).
//
// Cross-entropy of identity outputs, across rows: each group of rows is transposed
// into a small buffer, so that every logit column is one vector; the exponentials are
// a vector polynomial (within 3 ulp of expf; an exact 1 at the row's maximum), summed
// in double per row as math::row_loss does.
//
// Squared error of identity or sigmoid outputs, along each row: the squares summed in
// double lanes, then the lanes in a fixed order.
#pragma once

#include <cstdint>

#include "isa.hpp"
#include "losstopo/mlp.hpp"

namespace losstopo::losses {

// Rows up to this many logits take the vectorized path; wider rows, math::row_loss.
constexpr int kMaxLogits = 64;

// The summed loss of `rows` rows of k <= kMaxLogits logits (row stride ld_out)
// against labels; adds the number of rows whose first argmax is the label to
// *correct. With delta (row stride ld_delta, may alias out), writes dLoss/dz * scale.
double cross_entropy(isa::Level level, const float* out, int64_t ld_out, int64_t rows, int k,
                     const int32_t* labels, float* delta, int64_t ld_delta, float scale,
                     double* correct);

// The summed squared error of `rows` rows of k outputs (row stride ld_out, after the
// output activation `act`: Identity or Sigmoid) against targets (stride ld_t); with
// delta (stride ld_delta, may alias out), writes dLoss/dz * scale.
double squared_error(isa::Level level, Activation act, const float* out, int64_t ld_out,
                     int64_t rows, int k, const float* targets, int64_t ld_t, float* delta,
                     int64_t ld_delta, float scale);

}  // namespace losstopo::losses
