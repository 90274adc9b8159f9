// The per-vector layers after the shared first layer, fused (the CPU analogue of a
// fully fused MLP): for blocks of a few dozen samples of one parameter vector, the
// forward pass through layers 1..L-1, the output loss and its delta, and the backward
// pass down to the first layer's deltas, with the block's activations kept in L1/L2
// and small register-tiled products instead of separate BLAS calls and elementwise
// passes over the whole chunk. Compiled for AVX-512, AVX2+FMA and plain C++; the
// variant is chosen at run time (fused_layers.cpp).
//
// The environment variable LOSSTOPO_FUSED picks the variant of every later engine
// call: "blas"/"off" or unset (default: the per-vector BLAS products), "auto" (the
// widest fused variant the CPU supports), "avx512", "avx2" or "scalar" (the portable
// fallback); a variant the CPU lacks falls back to the next narrower one.
#pragma once

#include <cstdint>
#include <vector>

#include "losstopo/mlp.hpp"

namespace losstopo::fused {

enum class Isa { Blas = 0, Scalar = 1, Avx2 = 2, Avx512 = 3 };

// The variant asked for by LOSSTOPO_FUSED (read at every call), limited to what the
// CPU supports.
Isa choose();
const char* name(Isa isa);

// One vector's later layers over nc rows of its first-layer outputs.
template <typename T>
struct Job {
  const MLPSpec* spec;
  const T* theta;              // this vector's parameters (D)
  const int64_t* woff;         // weight offsets of the layers
  const int64_t* boff;         // bias offsets (with spec->bias)
  int64_t W1;                  // first-layer weights: g holds parameters W1..D-1
  T* a1;                       // (nc, h1) first-layer outputs after activation, row
  int64_t ld_a1;               //   stride ld_a1; overwritten by dLoss/dz1 with want_grad
  int nc;
  const int32_t* labels;       // (nc) for cross-entropy, else null
  const T* targets;            // (nc, dout) rows of stride ld_t for MSE, else null
  int64_t ld_t;
  T scale;                     // factor of the deltas (1/N or 1/(N k))
  bool want_grad;
  T* g;                        // gradient accumulator: parameter k at g[k - W1]
  double* loss;                // += summed row losses
  double* correct;             // += correct argmax predictions
};

// Runs one job (spec->num_layers() >= 2); scratch is grown as needed and reused.
void run(Isa isa, const Job<float>& job, std::vector<float>& scratch);
void run(Isa isa, const Job<double>& job, std::vector<double>& scratch);

}  // namespace losstopo::fused
