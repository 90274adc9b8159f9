// The fused per-vector layers (fused_layers.hpp) for three instruction sets, chosen at
// run time: the kernel body (fused_layers_impl.inc) is compiled three times, each copy
// in its own namespace with internal linkage, the wider ones inside a target region.
#include "fused_layers.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "isa.hpp"
#include "network_math.hpp"


namespace losstopo::fused {
namespace {

// The loss rows of a block, kept out of the target regions (and never inlined there):
// compiled like the engine's other loss code, without FMA contraction, so the loss
// is the same bits with and without the deltas.
template <typename T>
__attribute__((noinline)) void block_loss(const MLPSpec& s, const T* o, int64_t ldo, int rows,
                                          const int32_t* labels, const T* targets,
                                          int64_t ld_t, T* d, T scale, T* scratch,
                                          double* loss, double* correct) {
  const int dout = s.sizes.back();
  double total = 0.0, right = 0.0;
  for (int i = 0; i < rows; ++i) {
    bool ok = false;
    total += math::row_loss(s.loss, s.output, o + i * ldo, dout, labels ? labels[i] : 0,
                            targets ? targets + i * ld_t : nullptr, d ? d + i * ldo : nullptr,
                            scale, scratch, &ok);
    if (ok) right += 1.0;
  }
  *loss += total;
  *correct += right;
}

#define LT_KERNEL_FILE "fused_layers_impl.inc"
#include "isa_variants.inc"
#undef LT_KERNEL_FILE

Isa best_supported() {
  switch (isa::best_supported()) {
    case isa::Level::Avx512: return Isa::Avx512;
    case isa::Level::Avx2: return Isa::Avx2;
    default: return Isa::Scalar;
  }
}

template <typename T>
void run_any(Isa isa, const Job<T>& job, std::vector<T>& scratch) {
  switch (isa) {
#if LT_X86
    case Isa::Avx512: avx512::Kernel<T>::run(job, scratch); return;
    case Isa::Avx2: avx2::Kernel<T>::run(job, scratch); return;
#endif
    default: scalar::Kernel<T>::run(job, scratch); return;
  }
}

}  // namespace

Isa choose() {
  const Isa best = best_supported();
  // Default: the BLAS products, which measured as fast as the fused blocks on the
  // machine of benchmarks/RESULTS.md (see there); "auto" asks for the fused blocks.
  const char* env = std::getenv("LOSSTOPO_FUSED");
  if (!env || !*env) return Isa::Blas;
  const std::string v(env);
  Isa want = Isa::Blas;
  if (v == "auto" || v == "1") want = best;
  else if (v == "scalar") want = Isa::Scalar;
  else if (v == "avx2") want = Isa::Avx2;
  else if (v == "avx512") want = Isa::Avx512;
  return std::min(want, best);  // never more than the CPU supports
}

const char* name(Isa isa) {
  switch (isa) {
    case Isa::Blas: return "blas";
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

void run(Isa isa, const Job<float>& job, std::vector<float>& scratch) {
  run_any(isa, job, scratch);
}
void run(Isa isa, const Job<double>& job, std::vector<double>& scratch) {
  run_any(isa, job, scratch);
}

}  // namespace losstopo::fused
