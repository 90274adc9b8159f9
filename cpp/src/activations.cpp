// The vectorized activations (activations.hpp) for three instruction sets:
// activations_impl.inc compiled once per set, each copy in its own namespace.
#include "activations.hpp"

#include <cstdint>

// The vectors wider than the target (doubles of a float vector's lanes) never cross a
// call boundary: every function taking them is always inlined.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace losstopo::act {
namespace {

namespace scalar {
#define LT_WF 1
#define LT_WD 1
#include "activations_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace scalar

#if LT_X86
LT_TARGET_AVX2
namespace avx2 {
#define LT_WF 8
#define LT_WD 4
#include "activations_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx2
LT_TARGET_END

LT_TARGET_AVX512
namespace avx512 {
#define LT_WF 16
#define LT_WD 8
#include "activations_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx512
LT_TARGET_END
#endif

}  // namespace

bool activate(isa::Level level, Activation a, float* x, int64_t n) {
  if (a != Activation::Sigmoid) return false;
  switch (level) {
#if LT_X86
    case isa::Level::Avx512: avx512::Act::sigmoid(x, n); return true;
    case isa::Level::Avx2: avx2::Act::sigmoid(x, n); return true;
#endif
    default: scalar::Act::sigmoid(x, n); return true;
  }
}

}  // namespace losstopo::act
