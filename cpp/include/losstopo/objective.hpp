// What the optimizers need from a landscape: batched losses and gradients over the
// whole dataset, a subset shared by all vectors, or one subset per vector; and
// optional capabilities that an objective offers itself:
//  - prepared lines: losses at x_p - u d_p for many u (golden-section trials) from
//    work done once per line (line_evaluator());
//  - basis combinations: points that are combinations of a few basis vectors (the
//    points of a path) from work done once per basis vector (evaluate_combination());
//  - exact Hessian-vector products, batched over directions (hessian_vector());
//  - whole SGD epochs where the objective's data live (run_sgd_epoch()), so that a
//    GPU keeps the parameters for a whole epoch instead of exchanging them each step.
// Every consumer (Trainer, BatchLBFGS, PathBatch, the bindings) asks these methods;
// none looks for a concrete class. Landscape<T> (CPU) offers lines and
// combinations (its SGD epochs are the generic loop), CudaLandscape<T> (GPU) all three; an objective written elsewhere (a PyTorch model, a user's
// simulation, a test) implements what it can and gets the fast paths it offers.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>

namespace losstopo {

struct SGDParams;  // sgd.hpp

// Value-only evaluation along P lines, prepared once and queried many times.
template <typename T>
class LineEvaluator {
 public:
  virtual ~LineEvaluator() = default;
  // Readies the lines x_p - u d_p (x, d: (P, D)); returns false (and readies nothing)
  // when the objective cannot hold them (e.g. over its memory budget).
  virtual bool prepare(const T* x, const T* d, int64_t P) = 0;
  // Mean losses over the whole dataset at the n points x_l - u_k d_l, l = lines[k].
  virtual void values(const int64_t* lines, const T* u, int64_t n, T* loss) const = 0;

  // Optional: readies lines some of which continue lines prepared before: for
  // carried[p] = l >= 0, x_p is the point x_l - u[p] d_l of the previous lines (as
  // the caller computed it), so the objective may derive what it holds for x_p from
  // line l instead of from x_p (results then equal a fresh prepare() to rounding);
  // carried[p] < 0 starts afresh. The default ignores the carry.
  virtual bool prepare_carried(const T* x, const T* d, int64_t P, const int64_t* carried,
                               const T* u) {
    (void)carried, (void)u;
    return prepare(x, d, P);
  }

  // Optional: the mean losses and gradients (n, D) at the accepted points
  // x_l - u_k d_l (l = lines[k]) from the prepared products, without a forward
  // first-layer product. Returns false when not offered (the default); the caller
  // then evaluates the points in full.
  virtual bool accept(const int64_t* lines, const T* u, int64_t n, T* loss, T* grad) {
    (void)lines, (void)u, (void)n, (void)loss, (void)grad;
    return false;
  }
};

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

  // Capability: prepared lines. A new evaluator (it keeps its buffers across
  // prepare() calls), or null when not offered (the default).
  virtual std::unique_ptr<LineEvaluator<T>> line_evaluator() const { return nullptr; }

  // Capability: basis combinations. Point p (row p of points (P, D)) is
  // sum_k coef[p*nnz + k] V[index[p*nnz + k]] with V (Q, D); loss (P). With proj
  // (P, K), also proj_grad (K, D) = sum_p proj[p, n] grad_p. Over all samples or the
  // n_samples indices in samples (shared by all points); accuracy (P) too when not
  // null (classifiers). Offered when offers_combinations() is true; the default throws std::logic_error.
  virtual bool offers_combinations() const { return false; }
  virtual void evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                                    const int32_t* index, const T* coef, int nnz, T* loss,
                                    const T* proj = nullptr, int64_t K = 0,
                                    T* proj_grad = nullptr, const int64_t* samples = nullptr,
                                    int64_t n_samples = 0, T* accuracy = nullptr) const {
    (void)points, (void)P, (void)V, (void)Q, (void)index, (void)coef, (void)nnz, (void)loss,
        (void)proj, (void)K, (void)proj_grad, (void)samples, (void)n_samples, (void)accuracy;
    throw std::logic_error("evaluate_combination: not offered by this objective");
  }

  // Hint for basis combinations: the caller will pass these Q vectors (V (Q, D)) again
  // as basis vectors of evaluate_combination (a path's fixed endpoints, at every
  // step), until release_basis with the same vectors. An engine may keep work on them
  // in between; results are the same to rounding. The default keeps nothing.
  virtual void hold_basis(const T* V, int64_t Q) const { (void)V, (void)Q; }
  virtual void release_basis(const T* V, int64_t Q) const { (void)V, (void)Q; }

  // Capability: exact Hessian-vector products. hv (P, D): row p is H(theta_q) v_p,
  // the Hessian of the mean loss at theta_q times direction v_p, with theta (Pt, D)
  // and Pt = 1 (one point, P directions) or Pt = P (q = p); with loss (Pt) and grad
  // (Pt, D) not null, also the loss and gradient at theta. Over all samples or the
  // n_samples indices in samples. Offered when offers_hessian_vector() is true; the
  // default throws std::logic_error.
  virtual bool offers_hessian_vector() const { return false; }
  virtual void hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P, T* hv,
                              T* loss = nullptr, T* grad = nullptr,
                              const int64_t* samples = nullptr, int64_t n_samples = 0) const {
    (void)theta, (void)Pt, (void)v, (void)P, (void)hv, (void)loss, (void)grad, (void)samples,
        (void)n_samples;
    throw std::logic_error("hessian_vector: not offered by this objective");
  }

  // Capability: one epoch of minibatch SGD for the runs r with active[r] set, in
  // place on theta (R, D) (and velocity (R, D) when p.momentum > 0), exactly as the
  // generic loop of losstopo::sgd_epoch (sgd.cpp) does it through evaluate_each /
  // evaluate: orders holds one minibatch order (num_samples() indices) per active
  // run, in the order of r, or a single shared one when p.shared_order; step s takes
  // positions [s B, min((s + 1) B, n)); a run whose minibatch loss is not finite
  // stops (active[r] = 0, its theta as before that step). Returns false when not
  // offered (the default), and the caller runs the generic loop.
  virtual bool run_sgd_epoch(T* theta, T* velocity, int64_t R, uint8_t* active, const SGDParams& p,
                         const int64_t* orders) const {
    (void)theta, (void)velocity, (void)R, (void)active, (void)p, (void)orders;
    return false;
  }
};

}  // namespace losstopo
