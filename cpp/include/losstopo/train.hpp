// Training a population of R networks: SGD or L-BFGS, all runs advanced together,
// with full-dataset loss curves and snapshots at the minima of the training- and
// test-loss curves (the "train" and "test" solution sets of Yu & Morozov).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "losstopo/objective.hpp"
#include "losstopo/lbfgs.hpp"
#include "losstopo/sgd.hpp"

namespace losstopo {

enum class Method { SGD, LBFGS };

struct TrainParams {
  Method method = Method::SGD;
  int epochs = 10;  // SGD: passes over the data; L-BFGS: iterations
  SGDParams sgd;
  LBFGSParams lbfgs;  // max_iter is replaced by epochs
  uint64_t seed = 0;                // the shared minibatch order (shared_order)
  std::vector<uint64_t> run_seeds;  // per-run minibatch orders; empty: derived from seed
  // Throws std::invalid_argument naming the first setting out of range (the
  // settings of the method not used are not checked).
  void validate() const {
    detail::require(epochs >= 0, "epochs", "non-negative", epochs);
    if (method == Method::SGD) sgd.validate();
    else lbfgs.validate();
  }
};

// Run status codes (per run): 0 running, else a losstopo::Status value or
// kStoppedNonFinite for an SGD run stopped by a non-finite minibatch loss.
template <typename T>
class Trainer {
 public:
  // theta0 (R, D) are the initial vectors; test may be null.
  Trainer(const Objective<T>& train, const Objective<T>* test, const T* theta0, int64_t R,
          TrainParams params);

  // Advances to epoch `until` (at most params.epochs). After every epoch calls
  // on_epoch(epoch); returning false stops early (the state stays consistent).
  void run(int until, const std::function<bool(int)>& on_epoch = {});

  int epoch() const { return epoch_; }
  int64_t runs() const { return R_; }
  int64_t dim() const { return D_; }
  const TrainParams& params() const { return p_; }
  bool finished() const;

  // State (all row-major; curves are (R, epochs + 1), NaN beyond the current epoch).
  std::vector<T> theta, velocity, best_train_theta, best_test_theta;
  std::vector<double> train_loss, test_loss, train_acc, test_acc;
  std::vector<int32_t> best_train_epoch, best_test_epoch, status;
  // Objects the trainer keeps alive (e.g. objectives built just for it).
  std::vector<std::shared_ptr<const void>> owned;
  // Wall time in optimizer steps and in the per-epoch full-dataset evaluations.
  double step_seconds = 0.0, eval_seconds = 0.0;

  // L-BFGS internals for checkpoints: per run f, g (R, D), history pairs
  // (R, m, D) each, pair counts, and nit / nfev / njev.
  struct LBFGSState {
    std::vector<T> f, g, S, Y;
    std::vector<int32_t> count, nit, nfev, njev;
  };
  LBFGSState lbfgs_state() const;
  // Restores a checkpoint: the public state vectors must already be set. Everything
  // restored is checked first (check_restored): std::invalid_argument says what is
  // wrong, before the trainer uses any of it.
  void restore(int epoch, const LBFGSState* lbfgs);
  void check_restored(int epoch, const LBFGSState* lbfgs) const;

 private:
  void record(int e);
  const Objective<T>& train_;
  const Objective<T>* test_;
  TrainParams p_;
  int64_t R_, D_;
  int epoch_ = 0;
  std::unique_ptr<BatchLBFGS<T>> lbfgs_;
};

constexpr int32_t kStoppedNonFinite = int32_t(Status::NonFinite);

extern template class Trainer<float>;
extern template class Trainer<double>;

}  // namespace losstopo
