// The vectorized activations (activations.hpp) for three instruction sets:
// activations_impl.inc compiled once per set, each copy in its own namespace.
#include "activations.hpp"

#include <cstdint>

// The vectors wider than the target (doubles of a float vector's lanes) never cross a
// call boundary: every function taking them is always inlined.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace losstopo::act {
namespace {

#define LT_KERNEL_FILE "activations_impl.inc"
#include "isa_variants.inc"
#undef LT_KERNEL_FILE

}  // namespace

template <typename F>
bool with_level(isa::Level level, F f) {
  switch (level) {
#if LT_X86
    case isa::Level::Avx512: return f(avx512::Act{});
    case isa::Level::Avx2: return f(avx2::Act{});
#endif
    default: return f(scalar::Act{});
  }
}

bool activate(isa::Level level, Activation a, float* x, int64_t n) {
  if (a != Activation::Sigmoid && a != Activation::Softplus) return false;
  return with_level(level, [&](auto k) {
    if (a == Activation::Sigmoid) k.sigmoid(x, n);
    else k.softplus(x, n);
    return true;
  });
}

bool multiply_derivative(isa::Level level, Activation act, const float* a, int64_t ld_a,
                         float* d, int64_t ld_d, int64_t rows, int64_t n) {
  if (act != Activation::Softplus) return false;
  return with_level(level, [&](auto k) {
    k.softplus_derivative(a, ld_a, d, ld_d, rows, n);
    return true;
  });
}

}  // namespace losstopo::act
