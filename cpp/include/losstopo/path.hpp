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
//
// Curve families: every path is (1 - t) a + t b + sum_k c_k phi_k(t) with basis
// functions that vanish at t = 0 and 1, so the endpoints stay fixed and zero
// coefficients are the straight line; only the phi_k differ (path_basis):
//   Fourier    phi_k(t) = sin(k pi t), k = 1..K (the paper's);
//   Bezier     phi_k(t) = C(K+1, k) t^k (1 - t)^(K+1-k), k = 1..K: the Bernstein
//              basis of degree K + 1, whose control points are
//              P_k = (1 - k/(K+1)) a + k/(K+1) b + c_k (K = 1: Garipov et al.'s
//              quadratic curve with one control point);
//   Polychain  phi_k(t) = the hat function of the bend t_k = k/(K+1): a
//              piecewise-linear chain through K pivots a + t_k (b - a) + c_k
//              (a fixed-pivot chain, as in nudged elastic bands).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "losstopo/lbfgs.hpp"
#include "losstopo/objective.hpp"

namespace losstopo {

enum class PathObjective { Sum, SumSquares, Minimax };
enum class PathOptimizer { Adam, LBFGS };
enum class PathCurve { Fourier, Bezier, Polychain };

// phi_k(t), k = 1..K, of a curve family (see above), at the parameter t in [0, 1].
double path_basis(PathCurve curve, int K, int k, double t);

struct PathParams {
  int n_modes = 10;    // K: sine modes, Bezier control points or chain pivots
  PathCurve curve = PathCurve::Fourier;
  int n_points = 50;   // M, endpoints included
  double lam = 1e-4;   // smoothness weight
  PathObjective objective = PathObjective::Sum;
  double temperature = 0.01;  // tau of the minimax objective
  // Minimax: each path's tau is 1% of its straight line's barrier above the higher
  // endpoint (at least 1e-8) instead of `temperature`.
  bool auto_temperature = false;
  PathOptimizer optimizer = PathOptimizer::Adam;
  int steps = 100;            // Adam steps or L-BFGS iterations
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  LBFGSParams lbfgs;          // L-BFGS (max_iter is replaced by steps)
  // Stochastic steps (Adam only; never the default): each step evaluates the path's
  // points and endpoints on batch_size samples drawn without replacement, shared by
  // all paths of the batch and a pure function of (batch_seed, step), so a path's
  // steps do not depend on the pairs batched with it. 0: every step on all samples.
  // The returned path is the last iterate (a best-so-far on noisy minibatch energies
  // would favour lucky batches); measure() always uses all samples.
  int64_t batch_size = 0;
  uint64_t batch_seed = 0;
  // Throws std::invalid_argument naming the first setting out of range.
  void validate() const {
    detail::require(n_modes >= 0, "n_modes", "non-negative", n_modes);
    detail::require(n_points >= 3, "n_points", "at least 3", n_points);
    detail::require(detail::finite_nonneg(lam), "lam", "a finite non-negative number", lam);
    detail::require(std::isfinite(temperature) && temperature > 0.0, "temperature",
                    "a positive number", temperature);
    detail::require(steps >= 0, "steps", "non-negative", steps);
    detail::require(std::isfinite(lr) && lr > 0.0, "lr", "a positive number", lr);
    detail::require(beta1 >= 0.0 && beta1 < 1.0, "beta1", "in [0, 1)", beta1);
    detail::require(beta2 >= 0.0 && beta2 < 1.0, "beta2", "in [0, 1)", beta2);
    detail::require(std::isfinite(eps) && eps > 0.0, "eps", "a positive number", eps);
    detail::require(batch_size >= 0, "batch_size", "non-negative (0: all samples)", batch_size);
    if (batch_size > 0 && optimizer != PathOptimizer::Adam)
      throw std::invalid_argument("batch_size: stochastic path steps need optimizer 'adam'");
    if (optimizer == PathOptimizer::LBFGS) lbfgs.validate();
  }
};

// A finished path measured on a landscape (see PathBatch::measure); rows follow the
// paths asked for, t the grid of the path's M points.
struct PathMeasures {
  std::vector<double> energies;        // (R', M) on the grid
  std::vector<double> errors;          // (R', M) 1 - accuracy (classifiers; else empty)
  std::vector<double> straight;        // (R', M) the straight line a -> b on the grid
  std::vector<double> t_max, e_max;    // (R') the path's refined maximum
  std::vector<double> straight_t_max, straight_e_max;  // (R') the same for the line
  int64_t calls = 0;                   // engine calls made
};

// R paths between the pairs (A[r], B[r]), optimized together; each path's steps are
// those it would take alone (same numbers), so pairs can be batched freely.
template <typename T>
class PathBatch {
 public:
  // On any batched energy E(X (P, D)) -> (P) (and gradients when asked).
  PathBatch(BatchFunction<T> energy, int64_t dim, int64_t R, const T* A, const T* B,
            PathParams params);
  // On an objective (its full-dataset loss), which must outlive the batch. When it
  // offers basis combinations, every path step computes the first layer from the
  // K + 2 basis vectors (endpoints and coefficients) instead of the M points and
  // projects the gradient before the first-layer product; measure() uses them too.
  PathBatch(const Objective<T>& objective, int64_t R, const T* A, const T* B,
            PathParams params);

  // Evaluates every point in full even where the objective offers combinations
  // (for tests and benchmarks).
  void use_generic_evaluation() { generic_ = true; }
  bool uses_combinations() const { return obj_ && !generic_ && obj_->offers_combinations(); }

  int64_t dim() const { return D_; }
  int64_t size() const { return R_; }
  int n_modes() const { return K_; }
  int n_points() const { return M_; }
  const PathParams& params() const { return p_; }
  const std::vector<double>& t() const { return t_; }
  // The endpoints (R, D) each.
  const std::vector<T>& starts() const { return A_; }
  const std::vector<T>& ends() const { return B_; }

  // Points of paths with coefficients C (R', K, D) for the pairs `rows` (R' of
  // them; all R when rows is empty) at the parameters t (nt): W (R', nt, D).
  void points(const T* C, const double* t, int64_t nt, T* W,
              const std::vector<int64_t>& rows = {}) const;

  // Objective of the paths `rows` (all when empty) with coefficients C (R', K, D):
  // value (R'), gradient (R', K, D) (or null) and per-point energies (R', M)
  // (endpoints included; or null). On all samples, or with samples (n_samples
  // indices; objectives only) on those, endpoints included.
  void objective(const T* C, const std::vector<int64_t>& rows, T* value, T* grad,
                 T* energies, const int64_t* samples = nullptr, int64_t n_samples = 0);

  // The samples of stochastic step `step` (params().batch_size of them, sorted).
  std::vector<int64_t> step_samples(int step) const;

  // Optimizes all paths from the coefficients in coeffs. on_step(step) is called
  // after every step (Adam) or iteration (L-BFGS); returning false stops.
  void optimize(const std::function<bool(int)>& on_step = {});

  // Measures the paths `rows` (all when empty) with coefficients C (R', K, D):
  // energies on the grid t (and errors for a classifier objective), the straight
  // line on the same grid, and, with refine, the maximum along each of the two
  // curves: a grid `factor` times finer, then `rounds` rounds of `per_round` points
  // around the highest point so far (each round shrinks the bracket by
  // (per_round + 1) / 2). At most 2 + rounds engine calls per path.
  PathMeasures measure(const T* C, const std::vector<int64_t>& rows = {}, bool refine = true,
                       int factor = 10, int rounds = 3, int per_round = 32) const;

  // Minimax temperature of each path (R).
  const std::vector<double>& temperatures() const { return tau_; }

  // State: coefficients (R, K, D), the best seen by summed energy (without the
  // smoothness term) and that sum, the objective after each step (R, steps + 1;
  // NaN where not reached), and the energies of the endpoints (R, 2).
  std::vector<T> coeffs, best_coeffs;
  std::vector<double> best_sum, history, end_energy;
  int steps_done = 0;
  int64_t energy_points = 0;  // points evaluated so far

 private:
  // Records the objective of step `step` and the best path so far (last: the final
  // evaluation, on all samples).
  void track(const std::vector<int64_t>& rows, const T* C, const T* energies, const T* value,
             int step, bool last = false);
  void init();
  // Energies at the parameters t of path r (coefficients Cr (K, D)), or of its
  // straight line where line[i] is set: one engine call, through the objective's
  // combinations when offered.
  void curve_energies(int64_t r, const T* Cr, const std::vector<double>& t,
                      const std::vector<uint8_t>& line, std::vector<double>& E) const;
  BatchFunction<T> energy_;
  const Objective<T>* obj_ = nullptr;
  bool generic_ = false;
  std::vector<double> tau_;
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
