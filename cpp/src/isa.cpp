// What the CPU supports and which level the passes use (isa.hpp).
#include "isa.hpp"

#include <cstdlib>
#include <cstring>

namespace losstopo::isa {

Level best_supported() {
#if LT_X86
  static const Level best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
      return Level::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::Avx2;
    return Level::Scalar;
  }();
  return best;
#else
  return Level::Scalar;
#endif
}

Level chosen() {
  const Level best = best_supported();
  const char* env = std::getenv("LOSSTOPO_SIMD");
  if (!env || !*env) return best;
  Level want = best;
  if (std::strcmp(env, "scalar") == 0) want = Level::Scalar;
  else if (std::strcmp(env, "avx2") == 0) want = Level::Avx2;
  return want < best ? want : best;
}

}  // namespace losstopo::isa
