// The cross-entropy of softmax outputs over a block of rows, vectorized across rows
// (the CPU engine's most common output layer: identity output, cross-entropy loss).
// Each group of rows is transposed into a small buffer, so that every logit column
// is one vector; the exponentials are a vector polynomial (within 2 ulp of expf; an
// exact 1 at the row's maximum), summed in double per row as math::row_loss does.
// The loss does not depend on whether the deltas are asked for (the same bits).
#pragma once

#include <cstdint>

#include "isa.hpp"

namespace losstopo::softmax {

// Rows up to this many logits take the vectorized path; wider rows, math::row_loss.
constexpr int kMaxLogits = 64;

// The summed loss of `rows` rows of k <= kMaxLogits logits (row stride ld_out)
// against labels; adds the number of rows whose first argmax is the label to
// *correct. With delta (row stride ld_delta, may alias out), writes dLoss/dz * scale.
double cross_entropy(isa::Level level, const float* out, int64_t ld_out, int64_t rows, int k,
                     const int32_t* labels, float* delta, int64_t ld_delta, float scale,
                     double* correct);

}  // namespace losstopo::softmax
