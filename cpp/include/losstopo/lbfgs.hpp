// L-BFGS for a batch of independent problems advanced in lockstep.
//
// Every problem keeps its own history, direction and line search; each round of
// line-search trials of all running problems is one call of the batched
// objective, so a population of networks costs one engine call per round.
// Finished problems drop out of the batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "losstopo/line_search.hpp"
#include "losstopo/objective.hpp"

namespace losstopo {

// f(X) for a batch: X (R, D) row-major -> f (R) and, when g is not null, g (R, D).
template <typename T>
using BatchFunction = std::function<void(const T* X, int64_t R, T* f, T* g)>;

enum class LineSearchKind { Golden, StrongWolfe };

struct LBFGSParams {
  int history = 10;                                     // m, pairs kept
  LineSearchKind line_search = LineSearchKind::Golden;  // the paper's L-BFGS-GSS
  GoldenParams golden;
  WolfeParams wolfe;
  int max_iter = 1000;
  double gtol = 1e-5;     // stop when max_i |g_i| <= gtol
  double ftol = 0.0;      // stop when (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol
  double min_cos = 1e-4;  // history cleared when cos(s, y) < min_cos or |s||y| = 0
  // A search with no descent along steepest descent is retried with its first
  // trial shrunk further; below this factor the problem stops (line search failed).
  double min_shrink = 1e-12;
  // Prepared lines (golden searches): 0 prepares every line from its point afresh; k
  // > 0 lets a problem's next line continue its last one (the objective may carry
  // what it computed for the line, e.g. the first-layer product A_x - u A_d, instead
  // of computing it again), afresh whenever the problem's iteration count is a
  // multiple of k. Iterates then equal the fresh ones to rounding, and a run resumed
  // at such an iteration continues exactly as one that was not interrupted.
  int carry_lines = 0;
  // Throws std::invalid_argument naming the first setting out of range.
  void validate() const {
    detail::require(history >= 1, "history", "at least 1", history);
    detail::require(carry_lines >= 0, "carry_lines", "non-negative", carry_lines);
    detail::require(max_iter >= 0, "max_iter", "non-negative", max_iter);
    detail::require(detail::finite_nonneg(gtol), "gtol", "finite and >= 0", gtol);
    detail::require(detail::finite_nonneg(ftol), "ftol", "finite and >= 0", ftol);
    detail::require(std::isfinite(min_cos) && min_cos < 1.0, "min_cos", "finite and < 1",
                    min_cos);
    detail::require(min_shrink > 0.0 && min_shrink < 1.0, "min_shrink", "in (0, 1)",
                    min_shrink);
    golden.validate();
    wolfe.validate();
  }
};

enum class Status : int {
  Running = 0,
  GradientTolerance = 1,
  FunctionTolerance = 2,
  MaxIterations = 3,
  LineSearchFailed = 4,
  NonFinite = 5,
  Stopped = 6,  // by the caller
};

inline const char* status_message(Status s) {
  switch (s) {
    case Status::Running: return "running";
    case Status::GradientTolerance: return "gradient below gtol";
    case Status::FunctionTolerance: return "relative reduction of f below ftol";
    case Status::MaxIterations: return "maximum number of iterations reached";
    case Status::LineSearchFailed: return "line search found no descent along steepest descent";
    case Status::NonFinite: return "non-finite function value or gradient";
    case Status::Stopped: return "stopped by the caller";
  }
  return "unknown";
}

template <typename T>
double dot(const T* a, const T* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// The limited-memory inverse-Hessian approximation: a ring of (s, y) pairs.
template <typename T>
class LBFGSHistory {
 public:
  LBFGSHistory(int64_t dim, int m) : n_(dim), m_(m), S_(size_t(dim) * m), Y_(size_t(dim) * m),
                                      rho_(m), alpha_(m) {
    if (m < 1) throw std::invalid_argument("history: need at least one pair");
  }
  void clear() { count_ = head_ = 0; }
  int size() const { return count_; }
  int capacity() const { return m_; }

  // Adds (s, y) unless it fails the curvature test, in which case the history is
  // cleared. Returns whether the pair was kept.
  bool push(const T* s, const T* y, double min_cos) {
    const double sy = dot(s, y, n_), ss = dot(s, s, n_), yy = dot(y, y, n_);
    const double norm = std::sqrt(ss * yy);
    if (!std::isfinite(sy) || !std::isfinite(norm) || norm == 0.0 || sy / norm < min_cos) {
      clear();
      return false;
    }
    const int slot = (head_ + count_) % m_;
    std::copy(s, s + n_, &S_[size_t(slot) * n_]);
    std::copy(y, y + n_, &Y_[size_t(slot) * n_]);
    rho_[slot] = 1.0 / sy;
    gamma_ = sy / yy;
    if (count_ < m_) ++count_;
    else head_ = (head_ + 1) % m_;
    return true;
  }

  // r = H g by the two-loop recursion; H0 = gamma I with gamma = s'y / y'y of the
  // newest pair (1 when empty).
  void apply(const T* g, T* r) const {
    std::copy(g, g + n_, r);
    for (int k = count_ - 1; k >= 0; --k) {
      const int slot = (head_ + k) % m_;
      const T* s = &S_[size_t(slot) * n_];
      const T* y = &Y_[size_t(slot) * n_];
      alpha_[k] = rho_[slot] * dot(s, r, n_);
      const T a = T(alpha_[k]);
      for (int64_t i = 0; i < n_; ++i) r[i] -= a * y[i];
    }
    const T gamma = count_ ? T(gamma_) : T(1);
    for (int64_t i = 0; i < n_; ++i) r[i] *= gamma;
    for (int k = 0; k < count_; ++k) {
      const int slot = (head_ + k) % m_;
      const T* s = &S_[size_t(slot) * n_];
      const T* y = &Y_[size_t(slot) * n_];
      const T c = T(alpha_[k] - rho_[slot] * dot(y, r, n_));
      for (int64_t i = 0; i < n_; ++i) r[i] += c * s[i];
    }
  }

  // Pairs oldest first, for checkpoints: S and Y (size, dim).
  void export_pairs(T* S, T* Y) const {
    for (int k = 0; k < count_; ++k) {
      const int slot = (head_ + k) % m_;
      std::copy(&S_[size_t(slot) * n_], &S_[size_t(slot) * n_] + n_, S + size_t(k) * n_);
      std::copy(&Y_[size_t(slot) * n_], &Y_[size_t(slot) * n_] + n_, Y + size_t(k) * n_);
    }
  }
  // Rebuilds the history from exported pairs (each must pass the curvature test again,
  // which it did when it was first pushed, so this is exact).
  void import_pairs(const T* S, const T* Y, int count) {
    clear();
    for (int k = 0; k < count; ++k) push(S + size_t(k) * n_, Y + size_t(k) * n_, -2.0);
  }

 private:
  int64_t n_;
  int m_;
  int count_ = 0, head_ = 0;
  double gamma_ = 1.0;
  std::vector<T> S_, Y_;
  std::vector<double> rho_;
  mutable std::vector<double> alpha_;
};

// Per-problem counters and state of a batched run.
template <typename T>
struct Problem {
  std::vector<T> x, g, dir, gtrial;
  T f = T(0);
  LBFGSHistory<T> hist;
  std::unique_ptr<LineSearch<T>> ls;
  int nit = 0, nfev = 0, njev = 0;
  Status status = Status::Running;
  double shrink = 1.0;  // < 1 after line searches that found no descent
  Problem(int64_t dim, int m) : x(dim), g(dim), dir(dim), gtrial(dim), hist(dim, m) {}
};

template <typename T>
class BatchLBFGS {
 public:
  // Over any batched function (values and gradients, no fast path).
  BatchLBFGS(BatchFunction<T> fn, int64_t dim, LBFGSParams params)
      : fn_(std::move(fn)), dim_(dim), p_(params) {
    if (dim < 1) throw std::invalid_argument("x0: empty parameter vector");
    p_.validate();
  }
  // Over an objective (full-dataset losses), with its prepared lines for the trials
  // of value-only (golden-section) searches when it offers them. The objective must
  // outlive the optimizer.
  BatchLBFGS(const Objective<T>& obj, LBFGSParams params)
      : BatchLBFGS([&obj](const T* X, int64_t n, T* f,
                          T* g) { obj.evaluate(X, n, f, g, nullptr, nullptr, 0); },
                   obj.num_params(), params) {
    if (p_.line_search == LineSearchKind::Golden) lines_ = obj.line_evaluator();
  }

  // Sets R starting points (R, D) and evaluates f and g there in one call.
  void start(const T* x0, int64_t R) {
    prepare(x0, R);
    std::vector<int64_t> all(R);
    for (int64_t r = 0; r < R; ++r) all[r] = r;
    evaluate_at_x(all);
    for (auto& q : probs_) check_converged(q, q.f, /*first=*/true);
  }

  // Sets R starting points without evaluating anything: the caller fills in each
  // problem's f, g and history (resuming from a checkpoint).
  void prepare(const T* x0, int64_t R) {
    if (R < 1) throw std::invalid_argument("x0: need at least one starting point");
    probs_.clear();
    carry_from_.assign(R, -1);
    carry_u_.assign(R, T(0));
    for (int64_t r = 0; r < R; ++r) {
      probs_.emplace_back(dim_, p_.history);
      Problem<T>& q = probs_.back();
      std::copy(x0 + r * dim_, x0 + (r + 1) * dim_, q.x.begin());
      if (p_.line_search == LineSearchKind::Golden)
        q.ls = std::make_unique<GoldenSectionSearch<T>>(p_.golden);
      else
        q.ls = std::make_unique<StrongWolfeSearch<T>>(p_.wolfe);
    }
  }

  int64_t size() const { return int64_t(probs_.size()); }
  int64_t dim() const { return dim_; }
  const Problem<T>& problem(int64_t r) const { return probs_.at(r); }
  Problem<T>& problem(int64_t r) { return probs_.at(r); }
  const LBFGSParams& params() const { return p_; }
  int64_t running() const {
    int64_t n = 0;
    for (const auto& q : probs_) n += q.status == Status::Running;
    return n;
  }
  // Uses `lines` for the trials of value-only (golden-section) line searches (null:
  // evaluate the trial points in full).
  void set_line_evaluator(std::unique_ptr<LineEvaluator<T>> lines) { lines_ = std::move(lines); }
  bool has_line_evaluator() const { return lines_ != nullptr; }

  // Marks problem r finished (e.g. by a caller that watches a budget).
  void stop(int64_t r, Status s) { probs_.at(r).status = s; }

  // One lockstep iteration of every running problem. Returns the number still running.
  int64_t iterate() {
    std::vector<int64_t> act;
    for (int64_t r = 0; r < size(); ++r)
      if (probs_[r].status == Status::Running) act.push_back(r);
    if (act.empty()) return 0;
    for (int64_t r : act) start_line_search(probs_[r]);
    const bool slopes = p_.line_search == LineSearchKind::StrongWolfe;
    // Value-only searches may run on prepared lines (one per active problem).
    bool lines = false;
    std::vector<int64_t> line_of(size(), -1);
    if (!slopes && lines_) {
      const int64_t na = int64_t(act.size());
      X_.resize(size_t(na) * dim_);
      G_.resize(size_t(na) * dim_);
      std::vector<int64_t> carried(na, -1);
      std::vector<T> us(na, T(0));
      for (int64_t j = 0; j < na; ++j) {
        const Problem<T>& q = probs_[act[j]];
        std::copy(q.x.begin(), q.x.end(), &X_[size_t(j) * dim_]);
        std::copy(q.dir.begin(), q.dir.end(), &G_[size_t(j) * dim_]);
        line_of[act[j]] = j;
        if (p_.carry_lines > 0 && q.nit % p_.carry_lines != 0) {
          carried[j] = carry_from_[act[j]];
          us[j] = carry_u_[act[j]];
        }
      }
      lines = p_.carry_lines > 0
                  ? lines_->prepare_carried(X_.data(), G_.data(), na, carried.data(), us.data())
                  : lines_->prepare(X_.data(), G_.data(), na);
    }
    // Where each problem's next line may start: this line, at its accepted step (0
    // when it did not move).
    for (int64_t r = 0; r < size(); ++r) {
      carry_from_[r] = lines ? line_of[r] : -1;
      carry_u_[r] = T(0);
    }
    // Rounds of trials: one batched evaluation per round.
    for (;;) {
      std::vector<int64_t> b;
      for (int64_t r : act)
        if (!probs_[r].ls->done()) b.push_back(r);
      if (b.empty()) break;
      const int64_t nb = int64_t(b.size());
      F_.resize(nb);
      if (lines) {
        std::vector<int64_t> idx(nb);
        std::vector<T> us(nb);
        for (int64_t j = 0; j < nb; ++j) {
          idx[j] = line_of[b[j]];
          us[j] = probs_[b[j]].ls->trial();
        }
        lines_->values(idx.data(), us.data(), nb, F_.data());
      } else {
        X_.resize(size_t(nb) * dim_);
        if (slopes) G_.resize(size_t(nb) * dim_);
        for (int64_t j = 0; j < nb; ++j) {
          const Problem<T>& q = probs_[b[j]];
          const T u = q.ls->trial();
          T* xr = &X_[size_t(j) * dim_];
          for (int64_t i = 0; i < dim_; ++i) xr[i] = q.x[i] - u * q.dir[i];
        }
        fn_(X_.data(), nb, F_.data(), slopes ? G_.data() : nullptr);
      }
      for (int64_t j = 0; j < nb; ++j) {
        Problem<T>& q = probs_[b[j]];
        ++q.nfev;
        T slope = T(0);
        if (slopes) {
          ++q.njev;
          const T* gr = &G_[size_t(j) * dim_];
          slope = T(-dot(gr, q.dir.data(), dim_));
          const T u = q.ls->trial();
          q.ls->report(F_[j], slope);
          if (q.ls->step() == u && u > T(0)) std::copy(gr, gr + dim_, q.gtrial.begin());
        } else {
          q.ls->report(F_[j], slope);
        }
      }
    }
    // Accept the steps; the golden search needs the gradient at the new point.
    std::vector<int64_t> moved;
    for (int64_t r : act)
      if (probs_[r].ls->descended()) moved.push_back(r);
    std::vector<T> fold(size());
    std::vector<std::vector<T>> gold(size());
    for (int64_t r : moved) {
      Problem<T>& q = probs_[r];
      fold[r] = q.f;
      gold[r] = q.g;
      const T u = q.ls->step();
      for (int64_t i = 0; i < dim_; ++i) q.x[i] -= u * q.dir[i];
      carry_u_[r] = u;
      if (slopes) {
        q.f = q.ls->value();
        q.g = q.gtrial;
      }
    }
    if (!slopes && !moved.empty() && !(lines && accept_on_lines(moved, line_of)))
      evaluate_at_x(moved);
    for (int64_t r : act) {
      Problem<T>& q = probs_[r];
      ++q.nit;
      if (!q.ls->descended()) {
        // No descent: retry along steepest descent; then keep shrinking the first
        // trial from where the search stopped, until steps are negligible.
        if (q.hist.size() > 0) {
          q.hist.clear();
        } else {
          q.shrink *= std::pow(0.6180339887498949, q.ls->evaluations());
          if (q.shrink < p_.min_shrink) q.status = Status::LineSearchFailed;
        }
        if (q.status == Status::Running && q.nit >= p_.max_iter) q.status = Status::MaxIterations;
        continue;
      }
      q.shrink = 1.0;
      // s = x_new - x_old = -u d, y = g_new - g_old.
      std::vector<T>& s = q.dir;  // reused: the direction is rebuilt next iteration
      const T u = q.ls->step();
      for (int64_t i = 0; i < dim_; ++i) s[i] = -u * s[i];
      std::vector<T>& y = gold[r];
      for (int64_t i = 0; i < dim_; ++i) y[i] = q.g[i] - y[i];
      q.hist.push(s.data(), y.data(), p_.min_cos);
      check_converged(q, fold[r], false);
    }
    return running();
  }

  // Iterates until every problem has finished.
  void run() {
    while (iterate() > 0) {
    }
  }

 private:
  // f and g at the accepted points from the prepared lines, when the evaluator offers
  // it (no forward first-layer product).
  bool accept_on_lines(const std::vector<int64_t>& moved, const std::vector<int64_t>& line_of) {
    const int64_t n = int64_t(moved.size());
    std::vector<int64_t> idx(n);
    std::vector<T> us(n);
    for (int64_t k = 0; k < n; ++k) {
      idx[k] = line_of[moved[k]];
      us[k] = probs_[moved[k]].ls->step();
    }
    F_.resize(n);
    G_.resize(size_t(n) * dim_);
    if (!lines_->accept(idx.data(), us.data(), n, F_.data(), G_.data())) return false;
    store_evaluations(moved);
    return true;
  }

  // f and g of the problems idx from F_ and G_ (row k for idx[k]).
  void store_evaluations(const std::vector<int64_t>& idx) {
    for (size_t k = 0; k < idx.size(); ++k) {
      Problem<T>& q = probs_[idx[k]];
      q.f = F_[k];
      std::copy(&G_[k * dim_], &G_[(k + 1) * dim_], q.g.begin());
      ++q.nfev;
      ++q.njev;
    }
  }

  void evaluate_at_x(const std::vector<int64_t>& idx) {
    const int64_t n = int64_t(idx.size());
    X_.resize(size_t(n) * dim_);
    F_.resize(n);
    G_.resize(size_t(n) * dim_);
    for (int64_t j = 0; j < n; ++j)
      std::copy(probs_[idx[j]].x.begin(), probs_[idx[j]].x.end(), &X_[size_t(j) * dim_]);
    fn_(X_.data(), n, F_.data(), G_.data());
    store_evaluations(idx);
  }

  void start_line_search(Problem<T>& q) {
    q.hist.apply(q.g.data(), q.dir.data());
    double rr = dot(q.dir.data(), q.dir.data(), dim_);
    double slope = -dot(q.g.data(), q.dir.data(), dim_);
    if (!std::isfinite(rr) || !(slope < 0.0)) {  // broken direction: steepest descent
      q.hist.clear();
      q.dir = q.g;
      rr = dot(q.dir.data(), q.dir.data(), dim_);
      slope = -rr;
    }
    const double rnorm = std::sqrt(rr);
    const T inv = T(1.0 / rnorm);
    for (auto& v : q.dir) v *= inv;
    q.ls->start(q.f, T(slope / rnorm), T(rnorm * q.shrink));
  }

  void check_converged(Problem<T>& q, T fold, bool first) {
    bool finite = std::isfinite(q.f);
    double gmax = 0.0;
    for (T v : q.g) {
      if (!std::isfinite(v)) finite = false;
      gmax = std::max(gmax, double(std::abs(v)));
    }
    if (!finite) q.status = Status::NonFinite;
    else if (gmax <= p_.gtol) q.status = Status::GradientTolerance;
    else if (!first && p_.ftol > 0.0 &&
             (double(fold) - double(q.f)) <=
                 p_.ftol * std::max({std::abs(double(fold)), std::abs(double(q.f)), 1.0}))
      q.status = Status::FunctionTolerance;
    else if (q.nit >= p_.max_iter) q.status = Status::MaxIterations;
  }

  BatchFunction<T> fn_;
  std::unique_ptr<LineEvaluator<T>> lines_;
  int64_t dim_;
  LBFGSParams p_;
  std::vector<Problem<T>> probs_;
  std::vector<T> X_, F_, G_;
  // Per problem: the line (of the last prepare) its point lies on, or -1, and the
  // step along it (prepared lines with carry_lines).
  std::vector<int64_t> carry_from_;
  std::vector<T> carry_u_;
};

}  // namespace losstopo
