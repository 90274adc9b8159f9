// Float activations built on exponentials, vectorized: the sigmoid (the autoencoder's
// output layer, its widest) and the softplus (its hidden layers) and the softplus's
// derivative take the vector exp of vexp.inc (and a vector log1p and expm1) instead
// of one libm call per value. Within a few ulp of the scalar forms; exp(z) is taken
// as 0 where it leaves expf's normal range (z < -87.3).
#pragma once

#include <cstdint>

#include "isa.hpp"
#include "losstopo/mlp.hpp"

namespace losstopo::act {

// x = act(x) for n floats when act is one of those vectorized here (returns true);
// otherwise nothing is done (returns false).
bool activate(isa::Level level, Activation a, float* x, int64_t n);

// d[i * ld_d + j] *= act'(a[i * ld_a + j]) (through the output a) on (rows x n) blocks
// when act's derivative is vectorized here (the softplus; returns true).
bool multiply_derivative(isa::Level level, Activation act, const float* a, int64_t ld_a,
                         float* d, int64_t ld_d, int64_t rows, int64_t n);

}  // namespace losstopo::act
