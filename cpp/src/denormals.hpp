// Subnormal floats while the engine computes: flushed to zero.
//
// On x86 cores an operation on a subnormal (below FLT_MIN = 1.2e-38, DBL_MIN =
// 2.2e-308) takes a microcode assist costing about a hundred times a normal one. Near
// a minimum of the cross-entropy the softmax's probabilities of the wrong classes fall
// below exp(-87) and the backward pass's deltas with them, so on a well-fitted network
// whole GEMMs run on subnormals (measured: a batched loss+gradient of FCP points near
// L-BFGS minima 2.4x slower than near SGD minima, same shapes). Values that small are
// zero to every sum they enter at the engine's precision, so each engine thread sets
// flush-to-zero and denormals-are-zero (MXCSR) for the span of its work and puts the
// thread's mode back after: the caller's floating-point environment is unchanged.
#pragma once

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define LOSSTOPO_MXCSR 1
#endif

namespace losstopo::denormals {

class Flush {
 public:
#ifdef LOSSTOPO_MXCSR
  Flush() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~Flush() { _mm_setcsr(saved_); }
#else
  Flush() = default;
#endif
  Flush(const Flush&) = delete;
  Flush& operator=(const Flush&) = delete;

 private:
#ifdef LOSSTOPO_MXCSR
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace losstopo::denormals
