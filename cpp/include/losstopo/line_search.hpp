// Line searches as interchangeable policies. Each search is a small state machine
// over phi(u) = f(w - u d), d a unit direction: it proposes a trial step with
// trial(), is told the value (and slope, when it asks for one) there with
// report(), and says when it is done(). Driving searches this way lets a batched
// optimizer advance many problems in lockstep, one batched evaluation per round.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace losstopo {

namespace detail {
// The settings' checks share one wording: "<name>: must be <rule>, got <value>".
template <typename V>
void require(bool ok, const char* name, const char* rule, V value) {
  if (ok) return;
  std::ostringstream m;
  m << name << ": must be " << rule << ", got " << value;
  throw std::invalid_argument(m.str());
}
inline bool finite_nonneg(double v) { return std::isfinite(v) && v >= 0.0; }
}  // namespace detail

// The line search of Yu & Morozov's L-BFGS-GSS (golden-section search).
// Bracket: try u = init * scale (scale = |r|, the length of the quasi-Newton step);
// while phi keeps falling, expand to expand * scale, then keep doubling; if the
// first try rises, shrink toward 0 by the golden ratio until phi < phi(0). Then
// golden-section steps in the larger sub-interval of the bracket. Stops when the
// bracket is shorter than xtol, its end values differ by less than ftol, or after
// max_evals evaluations, and returns the best point seen. An uphill step is never
// accepted: with no point below phi(0) the step is 0.
struct GoldenParams {
  double init = 0.2;
  double expand = 0.8;
  double xtol = 1e-4;
  double ftol = 1e-4;
  int max_evals = 6;
  // Throws std::invalid_argument naming the first field out of range as it is spelled
  // inside LBFGSParams (golden.init, ...).
  void validate() const {
    detail::require(std::isfinite(init) && init > 0.0, "golden.init", "positive", init);
    detail::require(std::isfinite(expand) && expand > 0.0, "golden.expand", "positive", expand);
    detail::require(detail::finite_nonneg(xtol), "golden.xtol", "finite and >= 0", xtol);
    detail::require(detail::finite_nonneg(ftol), "golden.ftol", "finite and >= 0", ftol);
    detail::require(max_evals >= 1, "golden.max_evals", "at least 1", max_evals);
  }
};

// A standard strong-Wolfe search (Nocedal & Wright, algorithms 3.5 and 3.6, with
// safeguarded cubic interpolation). The first trial is the full quasi-Newton step
// u = scale.
struct WolfeParams {
  double c1 = 1e-4;
  double c2 = 0.9;
  int max_evals = 20;
  double max_step_factor = 1e3;  // largest step, in units of scale
  void validate() const {
    detail::require(c1 > 0.0 && c1 < 1.0, "wolfe.c1", "in (0, 1)", c1);
    detail::require(c2 > c1 && c2 < 1.0, "wolfe.c2", "in (wolfe.c1, 1)", c2);
    detail::require(max_evals >= 1, "wolfe.max_evals", "at least 1", max_evals);
    detail::require(std::isfinite(max_step_factor) && max_step_factor >= 1.0,
                    "wolfe.max_step_factor", "finite and >= 1", max_step_factor);
  }
};

template <typename T>
class LineSearch {
 public:
  virtual ~LineSearch() = default;
  // f0 = phi(0), slope0 = phi'(0) (negative for a descent direction), scale = |r|.
  virtual void start(T f0, T slope0, T scale) = 0;
  virtual bool needs_slope() const = 0;
  virtual bool done() const = 0;
  virtual T trial() const = 0;
  // phi and (when needs_slope()) phi' at the last trial.
  virtual void report(T f, T slope) = 0;

  T step() const { return best_u_; }
  T value() const { return best_f_; }
  bool descended() const { return best_u_ > T(0); }
  int evaluations() const { return evals_; }

 protected:
  void reset_best(T f0) {
    best_u_ = T(0);
    best_f_ = f0;
    evals_ = 0;
  }
  void consider(T u, T f) {
    ++evals_;
    if (std::isfinite(f) && f < best_f_) {
      best_f_ = f;
      best_u_ = u;
    }
  }
  T best_u_ = T(0), best_f_ = T(0);
  int evals_ = 0;
};

template <typename T>
class GoldenSectionSearch final : public LineSearch<T> {
 public:
  explicit GoldenSectionSearch(GoldenParams p = {}) : p_(p) {}

  void start(T f0, T /*slope0*/, T scale) override {
    this->reset_best(f0);
    f0_ = f0;
    scale_ = scale;
    phase_ = Phase::First;
    u_ = T(p_.init) * scale;
    done_ = !(scale > T(0)) || !std::isfinite(f0);
  }
  bool needs_slope() const override { return false; }
  bool done() const override { return done_; }
  T trial() const override { return u_; }

  void report(T f, T /*slope*/) override {
    this->consider(u_, f);
    const bool below = std::isfinite(f);
    switch (phase_) {
      case Phase::First:
        if (below && f < f0_) {
          lo_ = {T(0), f0_};
          mid_ = {u_, f};
          phase_ = Phase::Expand;
          u_ = T(p_.expand) * scale_;
        } else {
          hi_ = {u_, f};
          phase_ = Phase::Shrink;
          u_ = u_ * kShrink;
        }
        break;
      case Phase::Expand:
        if (below && f < mid_.f) {
          lo_ = mid_;
          mid_ = {u_, f};
          u_ = T(2) * u_;
        } else {
          hi_ = {u_, f};
          phase_ = Phase::Golden;
        }
        break;
      case Phase::Shrink:
        if (below && f < f0_) {
          lo_ = {T(0), f0_};
          mid_ = {u_, f};
          phase_ = Phase::Golden;
        } else {
          hi_ = {u_, f};
          u_ = u_ * kShrink;
        }
        break;
      case Phase::Golden:
        if (below && f < mid_.f) {
          if (u_ < mid_.u) hi_ = mid_; else lo_ = mid_;
          mid_ = {u_, f};
        } else {
          if (u_ < mid_.u) lo_ = {u_, f}; else hi_ = {u_, f};
        }
        break;
    }
    if (this->evals_ >= p_.max_evals) {
      done_ = true;
      return;
    }
    if (phase_ == Phase::Golden) {
      if (hi_.u - lo_.u < T(p_.xtol) || std::abs(hi_.f - lo_.f) < T(p_.ftol)) {
        done_ = true;
        return;
      }
      // The next point goes into the larger sub-interval.
      if (mid_.u - lo_.u > hi_.u - mid_.u)
        u_ = mid_.u - kGolden * (mid_.u - lo_.u);
      else
        u_ = mid_.u + kGolden * (hi_.u - mid_.u);
    }
    if (!(u_ > T(0))) done_ = true;
  }

 private:
  struct Point {
    T u, f;
  };
  enum class Phase { First, Expand, Shrink, Golden };
  static constexpr T kGolden = T(0.3819660112501051);  // 2 - phi
  static constexpr T kShrink = T(0.6180339887498949);  // 1 / phi
  GoldenParams p_;
  Phase phase_ = Phase::First;
  T f0_ = T(0), scale_ = T(0), u_ = T(0);
  Point lo_{}, mid_{}, hi_{};
  bool done_ = true;
};

template <typename T>
class StrongWolfeSearch final : public LineSearch<T> {
 public:
  explicit StrongWolfeSearch(WolfeParams p = {}) : p_(p) {}

  void start(T f0, T slope0, T scale) override {
    this->reset_best(f0);
    f0_ = f0;
    g0_ = slope0;
    max_u_ = T(p_.max_step_factor) * scale;
    prev_ = {T(0), f0, slope0};
    u_ = scale;
    zoom_ = false;
    accepted_ = false;
    done_ = !(scale > T(0)) || !(slope0 < T(0)) || !std::isfinite(f0);
  }
  bool needs_slope() const override { return true; }
  bool done() const override { return done_; }
  T trial() const override { return u_; }
  bool accepted() const { return accepted_; }

  void report(T f, T g) override {
    this->consider(u_, f);
    const Point cur{u_, f, g};
    const bool finite = std::isfinite(f) && std::isfinite(g);
    const bool armijo = finite && f <= f0_ + T(p_.c1) * u_ * g0_;
    const bool curvature = finite && std::abs(g) <= -T(p_.c2) * g0_;
    if (!zoom_) {
      if (!armijo || (this->evals_ > 1 && f >= prev_.f)) {
        start_zoom(prev_, cur);
      } else if (curvature) {
        return accept(f);
      } else if (g >= T(0)) {
        start_zoom(cur, prev_);
      } else {
        prev_ = cur;
        u_ = std::min(T(2) * u_, max_u_);
        if (u_ <= prev_.u) done_ = true;  // cannot extrapolate further
      }
    } else {
      if (!armijo || f >= lo_.f) {
        hi_ = cur;
      } else {
        if (curvature) return accept(f);
        if (g * (hi_.u - lo_.u) >= T(0)) hi_ = lo_;
        lo_ = cur;
      }
      if (std::abs(hi_.u - lo_.u) <= std::numeric_limits<T>::epsilon() * hi_.u) done_ = true;
      else u_ = interpolate();
    }
    if (this->evals_ >= p_.max_evals) done_ = true;
  }

 private:
  struct Point {
    T u, f, g;
  };
  void accept(T f) {
    accepted_ = true;
    done_ = true;
    // The accepted point is the last trial, even if an earlier point was lower.
    this->best_u_ = u_;
    this->best_f_ = f;
  }
  void start_zoom(Point lo, Point hi) {
    zoom_ = true;
    lo_ = lo;
    hi_ = hi;
    u_ = interpolate();
  }
  // Minimizer of the cubic through lo and hi, kept inside the middle 80%.
  T interpolate() const {
    const T a = lo_.u, b = hi_.u;
    const T d1 = lo_.g + hi_.g - T(3) * (lo_.f - hi_.f) / (a - b);
    const T disc = d1 * d1 - lo_.g * hi_.g;
    T u = T(0.5) * (a + b);
    if (disc >= T(0) && std::isfinite(disc)) {
      const T d2 = (b > a ? T(1) : T(-1)) * std::sqrt(disc);
      const T c = b - (b - a) * (hi_.g + d2 - d1) / (hi_.g - lo_.g + T(2) * d2);
      if (std::isfinite(c)) u = c;
    }
    const T left = std::min(a, b), right = std::max(a, b), w = right - left;
    return std::min(std::max(u, left + T(0.1) * w), right - T(0.1) * w);
  }
  WolfeParams p_;
  T f0_ = T(0), g0_ = T(0), u_ = T(0), max_u_ = T(0);
  Point prev_{}, lo_{}, hi_{};
  bool zoom_ = false, accepted_ = false, done_ = true;
};

}  // namespace losstopo
