// The instruction sets the engine's hand-vectorized kernels are compiled for, and the
// one the CPU running them supports. A kernel written once (an .inc file) is compiled
// for each inside its own namespace, the wider ones between LT_TARGET_AVX2 or
// LT_TARGET_AVX512 and LT_TARGET_END, and the variant is picked at run time.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define LT_X86 1
#if defined(__clang__)
#define LT_TARGET_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define LT_TARGET_AVX512                                                                     \
  _Pragma(                                                                                   \
      "clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512dq,avx2,fma\"))), " \
      "apply_to = function)")
#define LT_TARGET_END _Pragma("clang attribute pop")
#else
#define LT_TARGET_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define LT_TARGET_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512vl,avx512dq,avx2,fma\")")
#define LT_TARGET_END _Pragma("GCC pop_options")
#endif
#else
#define LT_X86 0
#endif

namespace losstopo::isa {

enum class Level { Scalar = 1, Avx2 = 2, Avx512 = 3 };

// The widest level this CPU supports (Scalar off x86).
Level best_supported();

// The level the vectorized loops of the passes use: best_supported(), or narrower
// when the environment variable LOSSTOPO_SIMD says "avx2" or "scalar" (read at every
// call; tests compare the variants).
Level chosen();

}  // namespace losstopo::isa
