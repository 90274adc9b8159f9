// cpu_arithmetic(): the instruction set and BLAS kernels the CPU engine computes with.
#include "blas.hpp"
#include "isa.hpp"
#include "losstopo/landscape.hpp"

namespace losstopo {

Arithmetic cpu_arithmetic() {
  Arithmetic a;
  switch (isa::chosen()) {
    case isa::Level::Avx512: a.instruction_set = "avx512"; break;
    case isa::Level::Avx2: a.instruction_set = "avx2"; break;
    default: a.instruction_set = "scalar"; break;
  }
  const char* core = LOSSTOPO_BLAS(openblas_get_corename)();
  a.blas_kernels = core ? core : "unknown";
  return a;
}

}  // namespace losstopo
