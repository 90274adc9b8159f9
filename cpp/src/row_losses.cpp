// The block losses (row_losses.hpp) for three instruction sets:
// row_losses_impl.inc compiled once per set, each copy in its own namespace.
#include "row_losses.hpp"

#include <cmath>
#include <cstdint>

// The vectors wider than the target (doubles of a float vector's lanes) never cross a
// call boundary: every function taking them is always inlined.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace losstopo::losses {
namespace {

#define LT_KERNEL_FILE "row_losses_impl.inc"
#include "isa_variants.inc"
#undef LT_KERNEL_FILE

}  // namespace

double cross_entropy(isa::Level level, const float* out, int64_t ld_out, int64_t rows, int k,
                     const int32_t* labels, float* delta, int64_t ld_delta, float scale,
                     double* correct) {
  switch (level) {
#if LT_X86
    case isa::Level::Avx512:
      return avx512::RowLosses::cross_entropy(out, ld_out, rows, k, labels, delta, ld_delta,
                                              scale, correct);
    case isa::Level::Avx2:
      return avx2::RowLosses::cross_entropy(out, ld_out, rows, k, labels, delta, ld_delta,
                                            scale, correct);
#endif
    default:
      return scalar::RowLosses::cross_entropy(out, ld_out, rows, k, labels, delta, ld_delta,
                                              scale, correct);
  }
}

double squared_error(isa::Level level, Activation act, const float* out, int64_t ld_out,
                     int64_t rows, int k, const float* targets, int64_t ld_t, float* delta,
                     int64_t ld_delta, float scale) {
  auto run = [&](auto kernel) {
    return act == Activation::Sigmoid
               ? kernel.template squared<true>(out, ld_out, rows, k, targets, ld_t, delta,
                                               ld_delta, scale)
               : kernel.template squared<false>(out, ld_out, rows, k, targets, ld_t, delta,
                                                ld_delta, scale);
  };
  switch (level) {
#if LT_X86
    case isa::Level::Avx512: return run(avx512::RowLosses{});
    case isa::Level::Avx2: return run(avx2::RowLosses{});
#endif
    default: return run(scalar::RowLosses{});
  }
}

}  // namespace losstopo::losses
