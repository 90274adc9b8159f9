// Minibatch SGD for a population of networks on one landscape.
#pragma once

#include <cstdint>
#include <vector>

#include "losstopo/line_search.hpp"  // detail::require
#include "losstopo/objective.hpp"

namespace losstopo {

struct SGDParams {
  double lr = 0.1;
  double momentum = 0.0;  // PyTorch convention: v = mu v + g; w -= lr v
  int batch_size = 64;
  // One minibatch order shared by all runs: the first layer of every step is then
  // one product for the whole population. Runs still differ by their initialization.
  bool shared_order = false;
  // Throws std::invalid_argument naming the first setting out of range.
  void validate() const {
    detail::require(std::isfinite(lr) && lr > 0.0, "lr", "a positive number", lr);
    detail::require(momentum >= 0.0 && momentum < 1.0, "momentum", "in [0, 1)", momentum);
    detail::require(batch_size >= 1, "batch_size", "at least 1", batch_size);
  }
};

// A permutation of 0..n-1, a pure function of (seed, stream, epoch): the minibatch
// order of run `stream` in `epoch`. Same on every platform.
void permutation(uint64_t seed, uint64_t stream, uint64_t epoch, int64_t n, int64_t* out);

// One epoch of SGD (ceil(n / batch_size) steps, the last batch possibly smaller) for
// the R runs in theta (R, D), in place. velocity (R, D) is used when momentum > 0.
// Run r draws its minibatch order from permutation(run_seeds[r], 0, epoch), or, with
// shared_order, all runs use permutation(shared_seed, 0, epoch). Runs with
// active[r] == 0 are skipped; a step whose minibatch loss is not finite stops that
// run (active[r] = 0, theta kept as before the step). Returns the steps taken.
template <typename T>
int64_t sgd_epoch(const Objective<T>& ls, T* theta, T* velocity, int64_t R, uint8_t* active,
                  const SGDParams& p, const uint64_t* run_seeds, uint64_t shared_seed,
                  uint64_t epoch);

}  // namespace losstopo
