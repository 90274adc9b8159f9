// What the optimizers need from a landscape: batched losses and gradients over the
// whole dataset, a subset shared by all vectors, or one subset per vector.
// Landscape<T> is the native implementation; others (a PyTorch model, a user's
// simulation) implement the same interface and plug into the trainer.
#pragma once

#include <cstdint>

namespace losstopo {

template <typename T>
class Objective {
 public:
  virtual ~Objective() = default;
  virtual int64_t num_params() const = 0;
  virtual int64_t num_samples() const = 0;
  // Whether accuracy is defined (integer-labelled classification).
  virtual bool classifier() const = 0;
  // theta (P, D) -> mean loss (P), gradient (P, D) or null, accuracy (P) or null,
  // over all samples or the n_samples indices in samples (shared by all vectors).
  virtual void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* accuracy,
                        const int64_t* samples, int64_t n_samples) const = 0;
  // Vector p on its own B samples samples[p*B .. p*B+B): loss (P), grad (P, D) or null.
  virtual void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B,
                             T* loss, T* grad) const = 0;
  // Threads the objective uses (0: all); the optimizers' own loops follow it.
  virtual int threads() const { return 0; }
};

}  // namespace losstopo
