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

namespace scalar {
#define LT_WF 1
#define LT_WD 1
#include "row_losses_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace scalar

#if LT_X86
LT_TARGET_AVX2
namespace avx2 {
#define LT_WF 8
#define LT_WD 4
#include "row_losses_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx2
LT_TARGET_END

LT_TARGET_AVX512
namespace avx512 {
#define LT_WF 16
#define LT_WD 8
#include "row_losses_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx512
LT_TARGET_END
#endif

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
