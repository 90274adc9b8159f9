// The row mixes (mix.hpp) for three instruction sets: mix_impl.inc compiled once per
// set, each copy in its own namespace with internal linkage.
#include "mix.hpp"

#include <type_traits>

namespace losstopo::mix {
namespace {

namespace scalar {
#define LT_WF 1
#define LT_WD 1
#include "mix_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace scalar

#if LT_X86
LT_TARGET_AVX2
namespace avx2 {
#define LT_WF 8
#define LT_WD 4
#include "mix_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx2
LT_TARGET_END

LT_TARGET_AVX512
namespace avx512 {
#define LT_WF 16
#define LT_WD 8
#include "mix_impl.inc"
#undef LT_WF
#undef LT_WD
}  // namespace avx512
LT_TARGET_END
#endif

template <typename J>
void dispatch(isa::Level level, const J& job) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(job.out)>>;
  switch (level) {
#if LT_X86
    case isa::Level::Avx512: avx512::Mixer<T>::run(job); return;
    case isa::Level::Avx2: avx2::Mixer<T>::run(job); return;
#endif
    default: scalar::Mixer<T>::run(job); return;
  }
}

}  // namespace

void run(isa::Level level, const Job<float>& job) { dispatch(level, job); }
void run(isa::Level level, const Job<double>& job) { dispatch(level, job); }
void run(isa::Level level, const LineJob<float>& job) { dispatch(level, job); }
void run(isa::Level level, const LineJob<double>& job) { dispatch(level, job); }

}  // namespace losstopo::mix
