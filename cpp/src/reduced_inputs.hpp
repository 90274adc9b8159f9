// Input columns that are zero in every sample, left out of the first layer.
//
// Such a column adds nothing to the first layer's products, and the loss's gradient
// and Hessian are exactly zero in its weights. An engine built on the other columns
// alone (the data without the zero columns, a network with fewer inputs) computes the
// same losses with less work. Reduced<T, Engine> is that engine behind the full
// network's interface: parameter vectors and directions are gathered to the kept
// columns on the way in; gradients and Hessian-vector products are scattered back
// with exact zeros in the dropped columns' weights; parameters updated in place (SGD
// epochs) keep their dropped weights as they were. Both engines (landscape.cpp,
// cuda/landscape.cu) build one when their data have such columns.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "losstopo/mlp.hpp"
#include "losstopo/objective.hpp"
#include "losstopo/sgd.hpp"

namespace losstopo::reduced {

// Which of a network's d0 input columns are kept, and the translation of its flat
// parameter vectors (first-layer weights (h1, d0) row-major at offset 0, then the
// rest) to the network on the kept columns.
struct Columns {
  int d0 = 0, h1 = 0;
  int64_t D = 0;                          // parameters of the full network
  std::vector<int> kept;                  // ascending
  std::vector<std::pair<int, int>> runs;  // (first column, count) of consecutive kept ones
  int dk() const { return int(kept.size()); }
  int64_t Dk() const { return D - int64_t(h1) * (d0 - dk()); }
  bool drops() const { return dk() < d0; }
};

// The columns of X (n, d0) holding a value other than +0.0 in some sample. A column of
// +0.0 alone is dropped (a -0.0 keeps it, so that the data held give back the same
// bits); at least one column is kept.
template <typename T>
Columns find_columns(const T* X, int64_t n, const MLPSpec& spec) {
  Columns c;
  c.d0 = spec.sizes[0];
  c.h1 = spec.sizes[1];
  c.D = spec.num_params();
  std::vector<char> used(c.d0, 0);
  for (int64_t i = 0; i < n; ++i) {
    const T* row = X + i * c.d0;
    for (int j = 0; j < c.d0; ++j)
      if (row[j] != T(0) || std::signbit(row[j])) used[j] = 1;
  }
  for (int j = 0; j < c.d0; ++j)
    if (used[j]) c.kept.push_back(j);
  if (c.kept.empty()) c.kept.push_back(0);
  for (size_t k = 0; k < c.kept.size(); ++k) {
    if (k > 0 && c.kept[k] == c.kept[k - 1] + 1) ++c.runs.back().second;
    else c.runs.emplace_back(c.kept[k], 1);
  }
  return c;
}

// Storage for n values, not initialized (the translations write every value).
template <typename T>
class Buffer {
 public:
  explicit Buffer(size_t n = 0) : p_(n ? new T[n] : nullptr), n_(n) {}
  T* data() const { return p_.get(); }  // null when empty
  bool empty() const { return n_ == 0; }

 private:
  std::unique_ptr<T[]> p_;
  size_t n_;
};

// Runs body(p) for p < P, over `threads` threads (0: all) where the rows are many.
template <typename F>
void for_rows(int64_t P, int64_t D, int threads, F body) {
#ifdef _OPENMP
  const int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (P > 1 && P * D >= (1 << 18))
  for (int64_t p = 0; p < P; ++p) body(p);
#else
  (void)D, (void)threads;
  for (int64_t p = 0; p < P; ++p) body(p);
#endif
}

// One row of d0 values -> its dk kept ones; returns out past them.
template <typename T>
T* gather_row(const Columns& c, const T* row, T* out) {
  for (const auto& [first, count] : c.runs) {
    std::memcpy(out, row + first, sizeof(T) * count);
    out += count;
  }
  return out;
}

// dk kept values -> their places in one row of d0 (the others untouched); returns in
// past them.
template <typename T>
const T* scatter_row(const Columns& c, const T* in, T* row) {
  for (const auto& [first, count] : c.runs) {
    std::memcpy(row + first, in, sizeof(T) * count);
    in += count;
  }
  return in;
}

// One vector: in (D) -> out (Dk).
template <typename T>
void gather_one(const Columns& c, const T* in, T* out) {
  for (int r = 0; r < c.h1; ++r, in += c.d0) out = gather_row(c, in, out);
  std::memcpy(out, in, sizeof(T) * (c.D - int64_t(c.h1) * c.d0));
}

// One vector: in (Dk) -> out (D); zero_dropped as in scatter().
template <typename T>
void scatter_one(const Columns& c, const T* in, T* out, bool zero_dropped) {
  const int64_t W1 = int64_t(c.h1) * c.d0;
  if (zero_dropped) std::fill(out, out + W1, T(0));
  for (int r = 0; r < c.h1; ++r, out += c.d0) in = scatter_row(c, in, out);
  std::memcpy(out, in, sizeof(T) * (c.D - W1));
}

// The network on the kept columns.
inline MLPSpec reduce(MLPSpec spec, const Columns& c) {
  spec.sizes[0] = c.dk();
  return spec;
}

// X (n, d0) -> (n, dk): the kept columns.
template <typename T>
std::vector<T> keep_columns(const T* X, int64_t n, const Columns& c) {
  std::vector<T> out(size_t(n) * c.dk());
  for (int64_t i = 0; i < n; ++i) gather_row(c, X + i * c.d0, &out[size_t(i) * c.dk()]);
  return out;
}

// (n, dk) -> (n, d0) with +0.0 in the dropped columns: the data as given.
template <typename T>
std::vector<T> restore_columns(const T* Xk, int64_t n, const Columns& c) {
  std::vector<T> out(size_t(n) * c.d0, T(0));
  for (int64_t i = 0; i < n; ++i) scatter_row(c, Xk + i * c.dk(), &out[size_t(i) * c.d0]);
  return out;
}

// in (P, D) -> (P, Dk); null in, empty out.
template <typename T>
Buffer<T> gather(const Columns& c, const T* in, int64_t P, int threads = 0) {
  if (!in || P <= 0) return Buffer<T>();
  const int64_t Dk = c.Dk();
  Buffer<T> out(size_t(P) * Dk);
  T* o = out.data();
  for_rows(P, c.D, threads, [&](int64_t p) { gather_one(c, in + p * c.D, o + p * Dk); });
  return out;
}

// in (P, Dk) -> out (P, D). zero_dropped: the dropped weights set to zero (gradients,
// Hessian-vector products); else left as they are in out (parameters).
template <typename T>
void scatter(const Columns& c, const T* in, int64_t P, T* out, bool zero_dropped = true,
             int threads = 0) {
  if (!out || P <= 0) return;
  const int64_t Dk = c.Dk();
  for_rows(P, c.D, threads,
           [&](int64_t p) { scatter_one(c, in + p * Dk, out + p * c.D, zero_dropped); });
}

// Whether any of the rows (P, D) has a nonzero value in a dropped weight.
template <typename T>
bool any_dropped(const Columns& c, const T* in, int64_t P) {
  std::vector<char> dropped(c.d0, 1);
  for (int j : c.kept) dropped[j] = 0;
  for (int64_t p = 0; p < P; ++p)
    for (int r = 0; r < c.h1; ++r) {
      const T* w = in + p * c.D + int64_t(r) * c.d0;
      for (int j = 0; j < c.d0; ++j)
        if (dropped[j] && w[j] != T(0)) return true;
    }
  return false;
}

template <typename T>
class Lines final : public LineEvaluator<T> {
 public:
  Lines(const Columns& c, int threads, std::unique_ptr<LineEvaluator<T>> inner)
      : c_(c), threads_(threads), inner_(std::move(inner)) {}
  bool prepare(const T* x, const T* d, int64_t P) override {
    const Buffer<T> xk = gather(c_, x, P, threads_), dk = gather(c_, d, P, threads_);
    return inner_->prepare(xk.data(), dk.data(), P);
  }
  bool prepare_carried(const T* x, const T* d, int64_t P, const int64_t* carried,
                       const T* u) override {
    const Buffer<T> xk = gather(c_, x, P, threads_), dk = gather(c_, d, P, threads_);
    return inner_->prepare_carried(xk.data(), dk.data(), P, carried, u);
  }
  void values(const int64_t* lines, const T* u, int64_t n, T* loss) const override {
    inner_->values(lines, u, n, loss);
  }
  bool accept(const int64_t* lines, const T* u, int64_t n, T* loss, T* grad) override {
    const Buffer<T> g(grad && n > 0 ? size_t(n) * c_.Dk() : 0);
    if (!inner_->accept(lines, u, n, loss, g.data())) return false;
    scatter(c_, g.data(), n, grad, true, threads_);
    return true;
  }

 private:
  const Columns& c_;
  int threads_;
  std::unique_ptr<LineEvaluator<T>> inner_;
};

// The engine on the kept columns behind the full network's interface.
template <typename T, typename Engine>
class Reduced final : public Objective<T> {
 public:
  Reduced(Columns c, std::unique_ptr<Engine> engine)
      : c_(std::move(c)), engine_(std::move(engine)) {}
  Engine& engine() const { return *engine_; }
  const Columns& columns() const { return c_; }
  // (P, D) -> (P, Dk); null stays null.
  Buffer<T> in(const T* theta, int64_t P) const {
    return gather(c_, theta, P, engine_->threads());
  }
  // Room for P rows (P, Dk) of an output dst, none when dst is null.
  Buffer<T> room(const T* dst, int64_t P) const {
    return Buffer<T>(dst && P > 0 ? size_t(P) * c_.Dk() : 0);
  }
  // (P, Dk) -> dst (P, D), zeros in the dropped weights.
  void out(const Buffer<T>& g, int64_t P, T* dst) const {
    scatter(c_, g.data(), P, dst, true, engine_->threads());
  }

  int64_t num_params() const override { return c_.D; }
  int64_t num_samples() const override { return engine_->num_samples(); }
  bool classifier() const override { return engine_->classifier(); }
  int threads() const override { return engine_->threads(); }

  void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* accuracy,
                const int64_t* samples, int64_t n_samples) const override {
    const Buffer<T> g = room(grad, P);
    engine_->evaluate(in(theta, P).data(), P, loss, g.data(), accuracy, samples, n_samples);
    out(g, P, grad);
  }
  void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B, T* loss,
                     T* grad) const override {
    const Buffer<T> g = room(grad, P);
    engine_->evaluate_each(in(theta, P).data(), P, samples, B, loss, g.data());
    out(g, P, grad);
  }
  std::unique_ptr<LineEvaluator<T>> line_evaluator() const override {
    auto inner = engine_->line_evaluator();
    if (!inner) return nullptr;
    return std::make_unique<Lines<T>>(c_, engine_->threads(), std::move(inner));
  }
  bool offers_combinations() const override { return engine_->offers_combinations(); }
  void evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                            const int32_t* index, const T* coef, int nnz, T* loss,
                            const T* proj, int64_t K, T* proj_grad, const int64_t* samples,
                            int64_t n_samples, T* accuracy) const override {
    const bool want_grad = proj && proj_grad && K > 0;  // as the engines decide it
    const Buffer<T> g = want_grad ? room(proj_grad, K) : Buffer<T>();
    engine_->evaluate_combination(in(points, P).data(), P, in(V, Q).data(), Q, index, coef, nnz,
                                  loss, proj, K, want_grad ? g.data() : proj_grad, samples,
                                  n_samples, accuracy);
    if (want_grad) out(g, K, proj_grad);
  }
  void hold_basis(const T* V, int64_t Q) const override { engine_->hold_basis(in(V, Q).data(), Q); }
  void release_basis(const T* V, int64_t Q) const override {
    engine_->release_basis(in(V, Q).data(), Q);
  }
  bool offers_hessian_vector() const override { return engine_->offers_hessian_vector(); }
  void hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P, T* hv, T* loss,
                      T* grad, const int64_t* samples, int64_t n_samples) const override {
    const Buffer<T> h = room(hv, P), g = room(grad, Pt);
    engine_->hessian_vector(in(theta, Pt).data(), Pt, in(v, P).data(), P, h.data(), loss,
                            g.data(), samples, n_samples);
    out(h, P, hv);
    out(g, Pt, grad);
  }
  // The update moves a weight by its velocity and gradient; a dropped weight's gradient
  // is zero, so it stays where it is unless its velocity is not zero: then the generic
  // loop runs (returns false).
  bool run_sgd_epoch(T* theta, T* velocity, int64_t R, uint8_t* active, const SGDParams& p,
                     const int64_t* orders) const override {
    const bool momentum = p.momentum > 0.0 && velocity;
    if (theta && momentum && any_dropped(c_, velocity, R)) return false;
    const Buffer<T> t = in(theta, R), v = momentum ? in(velocity, R) : Buffer<T>();
    const std::vector<uint8_t> was(active, active + (theta && active ? R : 0));
    const int64_t Dk = c_.Dk();
    try {
      if (!engine_->run_sgd_epoch(t.data(), v.data(), R, active, p, orders)) return false;
    } catch (...) {  // runs stopped before the error keep their rows of that moment
      for (int64_t r = 0; r < int64_t(was.size()); ++r)
        if (was[r] && !active[r]) {
          scatter_one(c_, t.data() + r * Dk, theta + r * c_.D, false);
          if (momentum) scatter_one(c_, v.data() + r * Dk, velocity + r * c_.D, false);
        }
      throw;
    }
    scatter(c_, t.data(), R, theta, false);
    if (momentum) scatter(c_, v.data(), R, velocity, false);
    return true;
  }

 private:
  Columns c_;
  std::unique_ptr<Engine> engine_;
};

// The engine of the network `spec` on the data X (n, d0) built on the kept columns
// with `options` (an engine's own options, for which it drops no columns); null where
// no column is dropped. An autoencoder's targets stay the whole inputs.
template <typename T, typename Engine, typename Options>
std::unique_ptr<Reduced<T, Engine>> build(const MLPSpec& spec, const T* X, int64_t n,
                                          const int32_t* labels, const T* targets,
                                          const Options& options) {
  Columns c = find_columns(X, n, spec);
  if (!c.drops()) return nullptr;
  const std::vector<T> kept = keep_columns(X, n, c);
  const bool on_input = spec.loss == Loss::MSE && !targets;
  auto engine = std::make_unique<Engine>(reduce(spec, c), kept.data(), n, labels,
                                         on_input ? X : targets, options);
  return std::make_unique<Reduced<T, Engine>>(std::move(c), std::move(engine));
}

}  // namespace losstopo::reduced
