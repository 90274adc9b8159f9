// Float activations built on exponentials, vectorized: the sigmoid (the autoencoder's
// output layer, its widest) takes the vector exp of vexp.inc instead of one expf call
// per value. Within 3 ulp of the scalar form; 0 where exp(z) leaves expf's normal
// range (z < -87.3).
#pragma once

#include <cstdint>

#include "isa.hpp"
#include "losstopo/mlp.hpp"

namespace losstopo::act {

// x = act(x) for n floats when act is one of those vectorized here (returns true);
// otherwise nothing is done (returns false).
bool activate(isa::Level level, Activation a, float* x, int64_t n);

}  // namespace losstopo::act
