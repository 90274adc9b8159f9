// FourierPathFinder: low paths between two points of any batched energy.
//
// A path from a to b, t in [0, 1]:
//     w(t) = (1 - t) a + t b + sum_{n=1..K} c_n sin(n pi t),
// discretized at M equally spaced t_m = m / (M - 1) (endpoints included and
// fixed). The objective of Yu & Morozov is
//     L = sum_m E(w(t_m)) + lam * sum_m |w(t_m+1) - w(t_m)|^2,
// and its gradient with respect to c_n is sum_m g_m sin(n pi t_m) plus the
// smoothness term. Every objective evaluation is ONE batched energy call over the
// interior points of all R paths; the sine-basis projections are matrix products.
// The "minimax" objective replaces sum_m E_m by M tau log(mean_m exp(E_m / tau)),
// which tends to the sum for large tau and to M max_m E_m for small tau, so the
// optimization drives the path's highest point down toward the saddle.
// "SumSquares" (sum_m E_m^2) is the objective of the authors' 2-D notebook.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "losstopo/lbfgs.hpp"

namespace losstopo {

enum class PathObjective { Sum, SumSquares, Minimax };
enum class PathOptimizer { Adam, LBFGS };

struct PathParams {
  int n_modes = 10;    // K
  int n_points = 50;   // M, endpoints included
  double lam = 1e-4;   // smoothness weight
  PathObjective objective = PathObjective::Sum;
  double temperature = 0.01;  // tau of the minimax objective
  PathOptimizer optimizer = PathOptimizer::Adam;
  int steps = 100;            // Adam steps or L-BFGS iterations
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  LBFGSParams lbfgs;          // L-BFGS (max_iter is replaced by steps)
};

// Native evaluation of points given as combinations of basis vectors, with the
// gradient projected (Landscape::evaluate_combination has this signature).
template <typename T>
using CombinationFunction =
    std::function<void(const T* points, int64_t P, const T* V, int64_t Q, const int32_t* index,
                       const T* coef, int nnz, T* loss, const T* proj, int64_t K, T* proj_grad)>;

// R paths between the pairs (A[r], B[r]), optimized together.
template <typename T>
class PathBatch {
 public:
  PathBatch(BatchFunction<T> energy, int64_t dim, int64_t R, const T* A, const T* B,
            PathParams params);

  // With a combination function (a native landscape), every path step computes the
  // first layer from the K + 2 basis vectors (endpoints and coefficients) instead
  // of the M points, and projects the gradient before the first-layer product.
  void set_combination_function(CombinationFunction<T> f) { comb_ = std::move(f); }

  int64_t dim() const { return D_; }
  int64_t size() const { return R_; }
  int n_modes() const { return K_; }
  int n_points() const { return M_; }
  const PathParams& params() const { return p_; }
  const std::vector<double>& t() const { return t_; }

  // Points of paths with coefficients C (R', K, D) for the pairs `rows` (R' of
  // them; all R when rows is empty) at the parameters t (nt): W (R', nt, D).
  void points(const T* C, const double* t, int64_t nt, T* W,
              const std::vector<int64_t>& rows = {}) const;

  // Objective of the paths `rows` (all when empty) with coefficients C (R', K, D):
  // value (R'), gradient (R', K, D) (or null) and per-point energies (R', M)
  // (endpoints included; or null).
  void objective(const T* C, const std::vector<int64_t>& rows, T* value, T* grad,
                 T* energies);

  // Optimizes all paths from the coefficients in coeffs. on_step(step) is called
  // after every step (Adam) or iteration (L-BFGS); returning false stops.
  void optimize(const std::function<bool(int)>& on_step = {});

  // State: coefficients (R, K, D), the best seen by summed energy (without the
  // smoothness term) and that sum, the objective after each step (R, steps + 1;
  // NaN where not reached), and the energies of the endpoints (R, 2).
  std::vector<T> coeffs, best_coeffs;
  std::vector<double> best_sum, history, end_energy;
  int steps_done = 0;
  int64_t energy_points = 0;  // points evaluated so far

 private:
  void track(const std::vector<int64_t>& rows, const T* C, const T* energies, const T* value,
             int step);
  BatchFunction<T> energy_;
  CombinationFunction<T> comb_;
  int64_t D_, R_;
  int K_, M_;
  PathParams p_;
  std::vector<T> A_, B_;
  std::vector<double> t_;
  std::vector<T> S_;      // (M, K) sin(n pi t_m), interior rows used
  std::vector<T> W_, G_;  // scratch: interior points and their gradients
  std::vector<T> basis_;  // scratch: endpoints and coefficients of one path
};

extern template class PathBatch<float>;
extern template class PathBatch<double>;

}  // namespace losstopo
