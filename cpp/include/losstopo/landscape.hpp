// The batched loss landscape of an MLP over a dataset held by the engine.
//
// One call evaluates P parameter vectors at once. The first layer's input is
// shared by all P vectors, so its forward product and its weight gradient are
// single large GEMMs (N x d_in times d_in x P*h1); the smaller per-vector layers
// follow with per-vector products. Samples are streamed in chunks, so memory does
// not grow with N, and chunks are split statically over threads, so results are
// bitwise reproducible for a given thread count and chunk size.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/mlp.hpp"
#include "losstopo/objective.hpp"

namespace losstopo {

namespace detail {
template <typename T>
struct Pass;  // one pass of the engine over a range of chunks (landscape.cpp)
template <typename T>
struct Workspace;  // one thread's buffers
template <typename T>
struct InputPanels;  // the inputs' nonzeros in panels of rows (landscape.cpp)
// One point's forward pass and plain backward pass over the whole dataset, per
// sample row, kept between Hessian-vector product calls at that point (hessian.cpp).
template <typename T>
struct PointCache {
  bool valid = false;
  int threads = 0;                          // the threads and chunk option it was
  int64_t chunk = 0;                        //   computed with
  std::vector<T> theta;                     // (D) the point
  double loss = 0.0;                        // summed row losses
  std::vector<T> A1, D1;                    // (n, h1) first-layer outputs, deltas
  std::vector<std::vector<T>> acts, delta;  // layer l >= 1: (n, sizes[l+1])
};
}  // namespace detail

namespace reduced {
template <typename T, typename Engine>
class Reduced;  // the engine on the inputs' nonzero columns (reduced_inputs.hpp)
struct Columns;  // which columns it keeps
}  // namespace reduced

// How the first layer's products with the inputs are formed: as dense products
// (BLAS), or from the inputs' nonzeros alone (sparse panels: rows taken four at a
// time over the columns where any of them is nonzero), or chosen from the inputs'
// panel density (Auto: sparse below EngineOptions::kSparseBelow).
enum class InputProducts { Auto, Dense, Sparse };

struct EngineOptions {
  static constexpr int kMaxThreads = 1024;  // each thread holds its own workspaces
  // The panel density (Landscape::panel_density) below which Auto takes the sparse
  // products: the crossover measured by benchmarks/bench_sparse_inputs.py (RESULTS.md;
  // the sparse products cost about what the panels hold).
  static constexpr double kSparseBelow = 0.5;
  int threads = 0;     // 0: all OpenMP threads; at most kMaxThreads
  int64_t chunk = 0;   // samples per chunk; 0: chosen from the network and P
  // Largest memory for the first-layer products of prepared lines (prepare_lines).
  int64_t line_cache_bytes = int64_t(4) << 30;
  InputProducts input_products = InputProducts::Auto;
  // Leave out the input columns that are zero in every sample: the passes then run on
  // the other columns alone (the same results to rounding for finite weights; exact
  // zeros in those columns' gradients; a weight on such a column never reaches the
  // loss, as with the sparse products). Decided when the landscape is made: set_options
  // refuses a different value (std::invalid_argument).
  bool drop_zero_columns = true;
  // Throws std::invalid_argument naming the first setting out of range.
  void validate() const {
    if (threads < 0 || threads > kMaxThreads)
      throw std::invalid_argument("threads: must lie in [0, " + std::to_string(kMaxThreads) +
                                  "] (0: all cores), got " + std::to_string(threads));
    if (chunk < 0)
      throw std::invalid_argument("chunk: must be non-negative, got " + std::to_string(chunk));
    if (line_cache_bytes < 0)
      throw std::invalid_argument("line_cache_bytes: must be non-negative");
  }
};

// What a CPU engine's rounding depends on besides its thread count: the instruction
// set of its vectorized loops ("avx512", "avx2" or "scalar"; LOSSTOPO_SIMD may narrow
// it) and the BLAS kernels' family (OpenBLAS's core name, e.g. "Haswell", "Zen";
// OPENBLAS_CORETYPE may choose another). Two machines that agree on both (and on the
// thread count) compute bitwise the same numbers.
struct Arithmetic {
  std::string instruction_set;
  std::string blas_kernels;
};
Arithmetic cpu_arithmetic();

// The first layer's products for P lines x_p - u d_p over the whole dataset
// (2 x n x P x h1 numbers), filled by Landscape::prepare_lines and read by the same
// landscape's line_values (with zero input columns dropped it holds the vectors on
// the kept columns).
template <typename T>
struct LineCache {
  int64_t P = 0;
  std::vector<T> x, d;  // (P, D) as the engine holds them
  std::vector<T> A, B;  // (n, P*h1): X x1_p^T and X d1_p^T
  std::vector<T> next;  // the next A while it is formed from carried lines
};

template <typename T>
class Landscape final : public Objective<T> {
 public:
  // X: (n, sizes[0]) row-major. For cross-entropy, labels (n) in [0, sizes.back()).
  // For MSE, targets (n, sizes.back()), or nullptr to use X itself (autoencoder).
  // The data are copied. Throws std::invalid_argument on inconsistent input.
  Landscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels, const T* targets,
            EngineOptions options = {});
  ~Landscape() override;
  Landscape(const Landscape&) = delete;
  Landscape& operator=(const Landscape&) = delete;

  const MLPSpec& spec() const { return spec_; }
  int64_t num_samples() const override { return n_; }
  int64_t num_params() const override { return num_params_; }
  bool classifier() const override { return spec_.loss == Loss::CrossEntropy; }
  int threads() const override { return options_.threads; }
  int input_size() const { return spec_.sizes.front(); }
  const EngineOptions& options() const { return options_; }
  // The data (copies of the constructor's): X (n, sizes[0]), labels (n) for
  // cross-entropy, targets (n, sizes.back()) when given; empty where absent.
  std::vector<T> inputs() const;
  const std::vector<int32_t>& labels() const { return labels_; }
  const std::vector<T>& targets() const { return targets_; }
  void set_options(EngineOptions options);
  // The fraction of nonzero inputs, and whether the passes form the first layer's
  // products with the inputs from their nonzeros (the options' input_products, Auto
  // deciding by the panel density). Loss and gradient passes, combinations, held basis
  // products, prepared lines and Hessian-vector products use them (passes over sample
  // lists only for products of 1,024 columns or more); per-vector minibatches
  // (evaluate_each) keep dense products.
  double input_density() const { return density_; }
  // The fraction of the inputs the sparse products read: the rows in groups of four,
  // each over the columns where any of its rows is nonzero (MNIST: 0.39 for 0.19 of
  // the pixels nonzero; independent random zeros: 1 - (1 - density)^4).
  double panel_density() const { return panel_density_; }
  bool sparse_inputs() const { return sparse_; }
  // The input columns the passes read: sizes[0] less the columns dropped as zero in
  // every sample (EngineOptions::drop_zero_columns).
  int kept_columns() const;

  // theta: (P, D) row-major. loss: (P) mean loss over the samples. grad: (P, D)
  // mean gradient, or nullptr for the loss alone. accuracy: (P) fraction of samples
  // classified correctly (cross-entropy only), or nullptr. samples: optional list of
  // n_samples sample indices (shared by all P vectors); nullptr means all samples.
  void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* accuracy = nullptr,
                const int64_t* samples = nullptr, int64_t n_samples = 0) const override;

  // Minibatch form: vector p is evaluated on its own B samples samples[p*B .. p*B+B)
  // (P, B). Vectors are spread over threads. loss (P); grad (P, D) or nullptr.
  void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B, T* loss,
                     T* grad) const override;

  // Line searches: losses at x_p - u d_p for many u cost only the per-vector layers
  // once X x1_p^T and X d1_p^T are known. prepare_lines computes them for P lines
  // (x, d: (P, D)); it returns false (and prepares nothing) when they would exceed
  // options().line_cache_bytes. line_values then gives the mean losses at the n
  // points x_l - u_k d_l, l = lines[k], over the whole dataset.
  // With grad (n, D), also the gradients there: the backward pass alone, the forward
  // first layer coming from the prepared products (the L-BFGS-GSS accepted points).
  // With carried (P) and u (P): line p with carried[p] = l >= 0 starts at the point
  // x_l - u[p] d_l of the lines the cache holds, and its first-layer product is taken
  // as A_l - u[p] B_l instead of a new product (equal to rounding): an L-BFGS-GSS
  // iteration then needs the products of its directions alone.
  bool prepare_lines(const T* x, const T* d, int64_t P, LineCache<T>& cache,
                     const int64_t* carried = nullptr, const T* u = nullptr) const;
  void line_values(const LineCache<T>& cache, const int64_t* lines, const T* u, int64_t n,
                   T* loss, T* grad = nullptr) const;
  // The Objective capability: an evaluator over a LineCache of its own.
  std::unique_ptr<LineEvaluator<T>> line_evaluator() const override;

  // Points that are combinations of a few basis vectors (the points of a Fourier path
  // are combinations of its endpoints and coefficients): point p (P, D row p of
  // `points`) = sum_k coef[p*nnz + k] V[index[p*nnz + k]], V (Q, D). The first layer is
  // then computed from the Q basis products instead of P products. loss (P). With
  // proj (P, K), also proj_grad (K, D) = sum_p proj[p, n] grad_p, whose first-layer
  // part is accumulated after projection (K products instead of P). Over all samples
  // or the n_samples indices in samples.
  bool offers_combinations() const override { return true; }
  void evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                            const int32_t* index, const T* coef, int nnz, T* loss,
                            const T* proj = nullptr, int64_t K = 0, T* proj_grad = nullptr,
                            const int64_t* samples = nullptr, int64_t n_samples = 0,
                            T* accuracy = nullptr) const override;

  // Basis vectors held between calls (a path's endpoints while it is optimized):
  // their first-layer products over all samples, kept while a hold lasts and within
  // options().line_cache_bytes in all (past it, a vector is simply not held).
  // evaluate_combination then takes those columns from the held products instead of
  // the product with the inputs (the same to rounding). Holds are counted: a vector
  // held twice is released twice.
  void hold_basis(const T* V, int64_t Q) const override;
  void release_basis(const T* V, int64_t Q) const override;
  // How many basis vectors are held now.
  int64_t held_basis() const;

  // Exact Hessian-vector products by the R-operator (hessian.cpp): see
  // Objective::hessian_vector. One point and many directions shares the forward and
  // the plain backward pass between the directions, and over all samples (without
  // the gradient) keeps them for the next call at the same point (Lanczos,
  // Hutchinson and quadrature ask many times at one point); the results do not
  // depend on whether they were kept.
  bool offers_hessian_vector() const override { return true; }
  void hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P, T* hv,
                      T* loss = nullptr, T* grad = nullptr, const int64_t* samples = nullptr,
                      int64_t n_samples = 0) const override;

  // Chunk size evaluate() uses for P vectors.
  int64_t chunk_size(int64_t P) const;

 private:
  // Chunks of passes over all samples start on the held panels' blocks of rows.
  int64_t chunk_multiple() const;
  void check_call(const T* theta, int64_t P, const int64_t* samples, int64_t n_samples) const;
  // evaluate_each; with `full`, theta and grad are laid out for the network on all the
  // columns `full` keeps some of (this engine being the one on the kept columns).
  void evaluate_each_from(const T* theta, int64_t P, const int64_t* samples, int64_t B,
                          T* loss, T* grad, const reduced::Columns* full) const;
  detail::Pass<T> make_pass(const T* theta, int64_t P, const T* w1all, const T* b1all,
                    const int64_t* samples, int64_t N, int64_t C, bool want_grad) const;

  MLPSpec spec_;
  // With zero input columns dropped: the engine on the other columns, which every
  // call is handed to after its vectors are translated (X_ is then not kept here).
  std::unique_ptr<reduced::Reduced<T, Landscape<T>>> reduced_;
  Landscape<T>& inner() const;
  int64_t n_;
  int64_t num_params_;
  std::vector<T> X_;
  std::vector<int32_t> labels_;
  std::vector<T> targets_;
  EngineOptions options_;
  double density_ = 1.0, panel_density_ = 1.0;
  bool sparse_ = false;
  std::unique_ptr<detail::InputPanels<T>> panels_;  // when sparse_: all samples' panels
  // Buffers reused across calls (taken by one call at a time).
  struct WorkspaceLease;
  mutable std::mutex cache_mutex_;
  mutable std::vector<std::unique_ptr<detail::Workspace<T>>> cache_;
  mutable std::vector<T> gather_cache_;
  // Held basis vectors (hold_basis): the first layer's weights (h1, d0), the product
  // X w1^T (n, h1) and the count of holds; shared with the passes that read them.
  struct HeldBasis {
    std::vector<T> w1, product;
    int64_t holds = 0;
  };
  std::shared_ptr<HeldBasis> find_held(const T* w1) const;  // under held_mutex_
  mutable std::mutex held_mutex_;
  mutable std::vector<std::shared_ptr<HeldBasis>> held_;
  // The last point of Hessian-vector products (one point, all samples, no gradient),
  // within options().line_cache_bytes; calls at the same point skip its passes.
  mutable std::mutex point_mutex_;
  mutable detail::PointCache<T> point_;
};

extern template class Landscape<float>;
extern template class Landscape<double>;

}  // namespace losstopo
