// The row mixes (mix.hpp) for three instruction sets: mix_impl.inc compiled once per
// set, each copy in its own namespace with internal linkage.
#include "mix.hpp"

#include <type_traits>

namespace losstopo::mix {
namespace {

#define LT_KERNEL_FILE "mix_impl.inc"
#include "isa_variants.inc"
#undef LT_KERNEL_FILE

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
