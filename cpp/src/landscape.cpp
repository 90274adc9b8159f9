#include "losstopo/landscape.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "activations.hpp"
#include "blas.hpp"
#include "block_ops.hpp"
#include "chunk_loop.hpp"
#include "denormals.hpp"
#include "fused_layers.hpp"
#include "isa.hpp"
#include "mix.hpp"
#include "row_losses.hpp"
#include "input_panels.hpp"
#include "sparse_rows.hpp"
#include "network_math.hpp"
#include "reduced_inputs.hpp"

namespace losstopo {

namespace {
// Whether the first layer's products are formed from the inputs' nonzeros.
bool sparse_choice(const EngineOptions& o, double panel_density) {
  return o.input_products == InputProducts::Sparse ||
         (o.input_products == InputProducts::Auto && panel_density < EngineOptions::kSparseBelow);
}
// The options of the engine on the kept columns: the choice made on all of them.
EngineOptions kept_options(EngineOptions o, double panel_density) {
  o.input_products = sparse_choice(o, panel_density) ? InputProducts::Sparse : InputProducts::Dense;
  o.drop_zero_columns = false;
  return o;
}
}  // namespace


template <typename T>
Landscape<T>::Landscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels,
                        const T* targets, EngineOptions options)
    : spec_(std::move(spec)), n_(n), options_(options) {
  spec_.validate();
  options_.validate();
  math::check_data(spec_, n, labels, targets != nullptr);
  num_params_ = spec_.num_params();
  const int d_in = spec_.sizes.front(), d_out = spec_.sizes.back();
  if (spec_.loss == Loss::CrossEntropy) labels_.assign(labels, labels + n);
  else if (targets) targets_.assign(targets, targets + n * d_out);
  int64_t nonzero = 0, read = 0;
  std::vector<char> any(d_in);
  for (int64_t r0 = 0; r0 < n; r0 += sparse::kPanel) {  // the panels' groups of rows
    const int64_t rows = std::min<int64_t>(sparse::kPanel, n - r0);
    std::fill(any.begin(), any.end(), char(0));
    for (int64_t i = r0; i < r0 + rows; ++i)
      for (int64_t j = 0; j < d_in; ++j)
        if (X[i * d_in + j] != T(0)) {
          ++nonzero;
          any[j] = 1;
        }
    read += rows * std::count(any.begin(), any.end(), char(1));
  }
  const double size = double(n) * double(d_in);
  density_ = size == 0.0 ? 1.0 : double(nonzero) / size;
  panel_density_ = size == 0.0 ? 1.0 : double(read) / size;
  if (options_.drop_zero_columns)  // the engine on the kept columns, where some are zero
    reduced_ = reduced::build<T, Landscape<T>>(spec_, X, n, labels, targets,
                                               kept_options(options_, panel_density_));
  if (!reduced_) X_.assign(X, X + n * d_in);
  set_options(options_);
}

template <typename T>
Landscape<T>& Landscape<T>::inner() const {
  return reduced_->engine();
}

template <typename T>
std::vector<T> Landscape<T>::inputs() const {
  if (!reduced_) return X_;
  const std::vector<T> kept = inner().inputs();
  return reduced::restore_columns(kept.data(), n_, reduced_->columns());
}

template <typename T>
int Landscape<T>::kept_columns() const {
  return reduced_ ? reduced_->columns().dk() : spec_.sizes[0];
}

template <typename T>
int64_t Landscape<T>::chunk_multiple() const {
  return sparse_ && options_.chunk <= 0 ? detail::InputPanels<T>::kBlock : 1;
}

template <typename T>
void Landscape<T>::set_options(EngineOptions options) {
  options.validate();
  if (options.drop_zero_columns != options_.drop_zero_columns)
    throw std::invalid_argument(
        "drop_zero_columns: decided when the landscape is made; make a new one to change it");
  options_ = options;
  sparse_ = sparse_choice(options, panel_density_);
  if (reduced_) {  // the kept columns' engine takes the choice made here
    inner().set_options(kept_options(options, panel_density_));
    return;
  }
  if (sparse_ && !panels_) {
    auto panels = std::make_unique<detail::InputPanels<T>>();
    const int64_t d0 = spec_.sizes[0];
    sparse::panels(X_.data(), n_, d0, d0, false, panels->rows);
    const int64_t B = detail::InputPanels<T>::kBlock, nb = (n_ + B - 1) / B;
    panels->columns.resize(nb);
#pragma omp parallel for num_threads(chunks::thread_count(options.threads)) schedule(dynamic)
    for (int64_t b = 0; b < nb; ++b)
      sparse::panels(X_.data() + b * B * d0, std::min(B, n_ - b * B), d0, d0, true,
                     panels->columns[b]);
    panels_ = std::move(panels);
  }
}

template <typename T>
int64_t Landscape<T>::chunk_size(int64_t P) const {
  if (reduced_) return inner().chunk_size(P);
  if (options_.chunk > 0) return options_.chunk;
  // Keep the first layer's activations for one chunk near 1M numbers.
  const int64_t width = std::max<int64_t>(P * spec_.sizes[1], spec_.sizes[0]);
  int64_t c = (int64_t(1) << 20) / width;
  return std::clamp<int64_t>(c, 64, 4096);
}

namespace {

// Summed loss over rows of the output layer; writes dLoss/dz (scaled by `scale`)
// into delta (which may alias out) when want_delta. `scratch` holds one row. Adds
// the number of correct argmax predictions to *correct. Float cross-entropy of
// identity outputs and squared error of identity or sigmoid outputs run vectorized
// (row_losses.hpp).
template <typename T>
double output_loss(isa::Level level, const MLPSpec& spec, const T* out, int64_t ld_out,
                   int64_t rows, const int32_t* labels, const T* target, int64_t ld_target,
                   T* delta, int64_t ld_delta, T scale, bool want_delta, T* scratch,
                   double* correct) {
  const int k = spec.sizes.back();
  if constexpr (std::is_same_v<T, float>) {
    if (spec.loss == Loss::CrossEntropy && spec.output == Activation::Identity &&
        k <= losses::kMaxLogits)
      return losses::cross_entropy(level, out, ld_out, rows, k, labels,
                                   want_delta ? delta : nullptr, ld_delta, scale, correct);
    if (spec.loss == Loss::MSE && (spec.output == Activation::Identity ||
                                   spec.output == Activation::Sigmoid))
      return losses::squared_error(level, spec.output, out, ld_out, rows, k, target,
                                   ld_target, want_delta ? delta : nullptr, ld_delta, scale);
  }
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    bool ok = false;
    total += math::row_loss(spec.loss, spec.output, out + i * ld_out, k,
                            labels ? labels[i] : 0, target ? target + i * ld_target : nullptr,
                            want_delta ? delta + i * ld_delta : nullptr, scale, scratch, &ok);
    if (ok) *correct += 1.0;
  }
  return total;
}


// x = act(x) for n values: float sigmoids and softplus vectorized (activations.hpp).
template <typename T>
void activate_values(isa::Level level, Activation a, T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    if (act::activate(level, a, x, n)) return;
  blocks::activate(a, x, n);
}

// d *= act'(a) on (rows x n) blocks: the float softplus vectorized (activations.hpp).
template <typename T>
void derivative_values(isa::Level level, Activation act, const T* a, int64_t ld_a, T* d,
                       int64_t ld_d, int64_t rows, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    if (act::multiply_derivative(level, act, a, ld_a, d, ld_d, rows, n)) return;
  blocks::multiply_derivative(act, a, ld_a, d, ld_d, rows, n);
}

}  // namespace

// Buffers of one thread for one pass.
template <typename T>
struct detail::Workspace {
  chunks::Gather<T> gather;            // a chunk's rows gathered (with a sample list)
  std::vector<T> a1;                   // (chunk, P*h1) first-layer outputs, then deltas
  std::vector<std::vector<T>> acts;    // per layer l >= 1: (chunk, h_{l+1}) for one vector
  std::vector<std::vector<T>> deltas;  // same shapes as acts
  std::vector<T> tmp;                  // (chunk, h1)
  std::vector<T> scratch;              // one output row
  std::vector<T> grad;                 // (P, D - W1): every parameter but the first weights
  std::vector<T> dw1;                  // (P*h1, d_in)
  std::vector<double> loss, correct;   // (P)
  std::vector<T> ybuf1, delta_proj;    // combination mode: (chunk, Q*h1), (chunk, K*h1)
  std::vector<T> fused;                // the fused later layers' buffers (fused_layers.hpp)
  sparse::Panels<T> prows, pcols;      // sparse inputs: a chunk's rows and columns in panels
  std::vector<T> vector;               // evaluate_each_from: one vector on the kept columns
};

namespace detail {
// How a pass makes the first layer of its P vectors: one product with their gathered
// first layers (Dense), from the products of prepared lines (Line), or as
// combinations of a basis' products (Combination).
enum class FirstLayer { Dense, Line, Combination };

// Line mode: the first layer of vector p is A[:, c] - u[p] B[:, c] with
// c = cols[p] * h1, from products prepared once (see prepare_lines).
template <typename T>
struct LineMode {
  const T* A = nullptr;
  const T* B = nullptr;
  int64_t ld = 0;
  const int64_t* cols = nullptr;
  const T* u = nullptr;
};

// Combination mode: point p = sum_k coef[p, k] V[index[p, k]], k < nnz; v1 (Q*h1, d0)
// holds the basis vectors' first layers, held[q] (or null) basis vector q's held
// product X v1_q^T (n, h1) over all samples. With a projection proj_t (K, P: the
// projection transposed) the first-layer weight gradient is accumulated only
// projected: sum_p proj[p, n] dW1_p.
template <typename T>
struct CombinationMode {
  const T* v1 = nullptr;
  int64_t Q = 0;
  const T* const* held = nullptr;
  const int32_t* index = nullptr;
  const T* coef = nullptr;
  int nnz = 0;
  const T* proj_t = nullptr;
  int64_t K = 0;
};
}  // namespace detail

// Everything one pass over a range of chunks needs.
template <typename T>
struct detail::Pass {
  const MLPSpec* spec;
  int64_t D, W1;  // parameters per vector, of them first-layer weights
  chunks::Data<T> data;        // the samples (X, labels or targets)
  const T* theta;              // (P, D)
  int64_t P;
  FirstLayer first = FirstLayer::Dense;
  const T* w1all;              // Dense: (P*h1, d0)
  const T* b1all;              // (P*h1) or null
  LineMode<T> line;            // Line only
  CombinationMode<T> comb;     // Combination only
  const int64_t* samples;      // (N) or null: rows 0..N-1 of X
  int64_t N, C;                // samples in the pass, per chunk
  bool want_grad;
  T scale;
  std::vector<int64_t> woff, boff;
  // How the per-vector layers run: fused blocks (fused_layers.hpp) or BLAS products.
  fused::Isa isa = fused::Isa::Blas;
  // The instruction set of the first layer's mixes (mix.hpp).
  isa::Level level = isa::Level::Scalar;
  // Sparse inputs (sparse_rows.hpp): the products with the inputs from their
  // nonzeros, reading the first layers transposed (Dense: w1t (d0, P*h1); Combination:
  // comb_v1t (d0, Q*h1)). With sparse_grad the weight gradient is formed by panels of
  // the inputs' columns too and kept transposed, dw1 (d0, its width).
  bool sparse = false, sparse_grad = false;
  // All samples' row and column panels (input_panels.hpp; null: each chunk makes its
  // own), the column panels used when every chunk starts on a block (held_columns).
  const InputPanels<T>* held = nullptr;
  bool held_columns = false;
  const T* w1t = nullptr;
  const T* comb_v1t = nullptr;
};

namespace {
using detail::Pass;
using detail::Workspace;
using blocks::add_bias;
using blocks::add_column_sums;
using blocks::Split;
using blocks::split_samples;

template <typename T>
void allocate(Workspace<T>& w, const Pass<T>& ps) {
  const MLPSpec& s = *ps.spec;
  const int L = s.num_layers(), d0 = s.sizes[0], h1 = s.sizes[1], dout = s.sizes.back();
  const int64_t C = ps.C, width1 = ps.P * h1;
  if (ps.samples) w.gather.reserve(ps.data, C);
  w.a1.resize(C * width1);
  w.acts.resize(L);
  w.deltas.resize(L);
  const bool blas_layers = ps.isa == fused::Isa::Blas;
  for (int l = 1; blas_layers && l < L; ++l) {
    w.acts[l].resize(C * s.sizes[l + 1]);
    if (ps.want_grad) w.deltas[l].resize(C * s.sizes[l + 1]);
  }
  if (ps.want_grad) {
    if (blas_layers) w.tmp.resize(C * h1);
    w.grad.resize(ps.P * (ps.D - ps.W1));
    w.dw1.resize((ps.comb.proj_t ? ps.comb.K * h1 : width1) * d0);
    if (ps.comb.proj_t) w.delta_proj.resize(C * ps.comb.K * h1);
  }
  if (ps.first == detail::FirstLayer::Combination) w.ybuf1.resize(C * ps.comb.Q * h1);
  w.scratch.resize(dout);
  w.loss.resize(ps.P);
  w.correct.resize(ps.P);
}

template <typename T>
void clear(Workspace<T>& w) {
  std::fill(w.grad.begin(), w.grad.end(), T(0));  // dw1 is overwritten by its first product
  std::fill(w.loss.begin(), w.loss.end(), 0.0);
  std::fill(w.correct.begin(), w.correct.end(), 0.0);
}

// The narrowest product (columns: first layers times units) whose sparse form pays for
// making each chunk's panels, where the held ones cannot serve (sample lists, a chunk
// option off their groups). benchmarks/cpp/sparse_first_layer.cpp: about the products
// of 12 first layers of 50 units; below, the dense products are faster (MNIST, one
// vector on a list of 10,000 samples: 0.72x).
constexpr int64_t kSparseBuildWidth = 1024;

// A pass's first-layer weight gradient: its width (P*h1, or K*h1 when projected) and
// whether it is kept transposed (sparse_grad: (d0, width)) rather than (width, d0).
template <typename T>
int64_t first_grad_width(const Pass<T>& ps) {
  return (ps.comb.proj_t ? ps.comb.K : ps.P) * ps.spec->sizes[1];
}
// Sparse products for a pass over chunks of C rows whose forward product is
// `forward_width` columns wide: from the held row panels when the chunks start on their
// groups, and the held column panels when they start on their blocks; else from panels
// each chunk makes, for products wide enough to pay for them.
template <typename T>
void choose_sparse(Pass<T>& ps, const blocks::Split& sp, int64_t forward_width) {
  const bool listed = ps.samples != nullptr;
  const bool held_rows = ps.held && !listed && (sp.nchunks == 1 || sp.C % sparse::kPanel == 0);
  ps.held_columns = ps.held && !listed &&
                    (sp.nchunks == 1 || sp.C % detail::InputPanels<T>::kBlock == 0);
  ps.sparse = held_rows || forward_width >= kSparseBuildWidth;
  ps.sparse_grad = ps.want_grad &&
                   (ps.held_columns || first_grad_width(ps) >= kSparseBuildWidth);
}

// The rows of a chunk in panels: the held ones when the chunk starts and ends on their
// groups, else made from the rows.
template <typename T>
sparse::PanelView<T> row_panels(const Pass<T>& ps, Workspace<T>& w, int64_t r0, int nc,
                                const T* xc) {
  const int64_t R = sparse::kPanel;
  if (ps.held && !ps.samples && r0 % R == 0 && (nc % R == 0 || r0 + nc == ps.N))
    return ps.held->rows.view(r0, nc);
  const int d0 = ps.spec->sizes[0];
  sparse::panels(xc, nc, d0, d0, false, w.prows);
  return w.prows.view();
}

// out (nc, m) = xc w^T for first layers w (m, d0): by BLAS, or with sparse inputs from
// the rows' panels and w transposed, wt (d0, m; row stride ld_wt).
template <typename T>
void input_product(const Pass<T>& ps, const sparse::PanelView<T>& rows, int nc, const T* xc,
                   const T* w, const T* wt, int64_t ld_wt, int64_t m, T* out, int64_t ld_out) {
  const int d0 = ps.spec->sizes[0];
  if (ps.sparse)
    sparse::run(ps.level, sparse::PanelJob<T>{rows, wt, ld_wt, m, out, ld_out, false});
  else
    blas::gemm(blas::N, blas::T, nc, int(m), d0, T(1), xc, d0, w, d0, T(0), out, int(ld_out));
}

// The chunk's share of the first-layer weight gradient, delta^T xc for deltas (nc, m):
// into w.dw1 (m, d0) by BLAS, or transposed (d0, m) from the columns' panels; the
// first chunk of a thread overwrites, the others add.
template <typename T>
void weight_product(const Pass<T>& ps, Workspace<T>& w, int64_t r0, int nc, const T* xc,
                    const T* delta, int64_t ld_delta, int64_t m, bool first) {
  const int d0 = ps.spec->sizes[0];
  if (ps.held_columns) {
    ps.held->gradient(ps.level, r0, nc, delta, ld_delta, m, w.dw1.data(), first);
  } else if (ps.sparse_grad) {
    sparse::panels(xc, nc, d0, d0, true, w.pcols);
    sparse::run(ps.level, sparse::PanelJob<T>{w.pcols.view(), delta, ld_delta, m, w.dw1.data(),
                                              m, !first});
  } else {
    blas::gemm(blas::T, blas::N, int(m), d0, nc, T(1), delta, int(ld_delta), xc, d0,
               first ? T(0) : T(1), w.dw1.data(), d0);
  }
}

// Accumulates chunks [c_begin, c_end) of the pass into w: summed losses, correct
// counts and (scaled) gradients.
template <typename T>
void run_chunks(const Pass<T>& ps, int64_t c_begin, int64_t c_end, Workspace<T>& w) {
  const MLPSpec& s = *ps.spec;
  const int L = s.num_layers();
  const int d0 = s.sizes[0], h1 = s.sizes[1], dout = s.sizes.back();
  const int64_t P = ps.P, D = ps.D, width1 = P * h1;
  const bool want_grad = ps.want_grad;
  for (int64_t c = c_begin; c < c_end; ++c) {
    const int64_t r0 = c * ps.C;
    const int nc = int(std::min<int64_t>(ps.C, ps.N - r0));
    const chunks::Rows<T> rows = chunks::rows(ps.data, ps.samples, r0, nc, w.gather);
    const T* xc = rows.x;
    const int32_t* yc = rows.y;
    const T* tc = rows.t;
    sparse::PanelView<T> prows{};
    if (ps.sparse && ps.first != detail::FirstLayer::Line) prows = row_panels(ps, w, r0, nc, xc);

    // Shared first layer: (nc, d0) x (d0, P*h1) in one product, or in line mode
    // from the prepared products (no product at all).
    T* a1 = w.a1.data();
    if (ps.first == detail::FirstLayer::Combination) {
      // The basis vectors' products, then each point's combination of them.
      const detail::CombinationMode<T>& cm = ps.comb;
      const int64_t wq = cm.Q * h1;
      T* y = w.ybuf1.data();
      for (int64_t q0 = 0; q0 < cm.Q;) {
        if (cm.held && cm.held[q0]) {  // a held product: its rows copied
          const T* held = cm.held[q0];
          for (int i = 0; i < nc; ++i) {
            const int64_t k = ps.samples ? ps.samples[r0 + i] : r0 + i;
            std::memcpy(y + int64_t(i) * wq + q0 * h1, held + k * h1, sizeof(T) * h1);
          }
          ++q0;
          continue;
        }
        int64_t q1 = q0 + 1;  // a run of basis vectors without held products
        while (q1 < cm.Q && !(cm.held && cm.held[q1])) ++q1;
        input_product(ps, prows, nc, xc, cm.v1 + q0 * h1 * d0, ps.comb_v1t + q0 * h1, wq,
                      (q1 - q0) * h1, y + q0 * h1, wq);
        q0 = q1;
      }
      mix::Job<T> m{nc, h1, int(P), cm.nnz, cm.index, cm.coef, y, wq, a1, width1};
      mix::run(ps.level, m);
    } else if (ps.first == detail::FirstLayer::Line) {
      const detail::LineMode<T>& lm = ps.line;
      mix::LineJob<T> m{nc, h1, int(P), lm.cols, lm.u, lm.A + r0 * lm.ld, lm.B + r0 * lm.ld,
                        lm.ld, a1, width1};
      mix::run(ps.level, m);
    } else {
      input_product(ps, prows, nc, xc, ps.w1all, ps.w1t, width1, width1, a1, width1);
    }
    if (ps.b1all) add_bias(a1, width1, nc, width1, ps.b1all);
    activate_values(ps.level, s.activation(0), a1, int64_t(nc) * width1);

    for (int64_t p = 0; p < P; ++p) {
      const T* th = ps.theta + p * D;
      if (L > 1 && ps.isa != fused::Isa::Blas) {
        // The later layers fused, a block of rows at a time.
        fused::Job<T> job;
        job.spec = &s;
        job.theta = th;
        job.woff = ps.woff.data();
        job.boff = ps.boff.data();
        job.W1 = ps.W1;
        job.a1 = a1 + p * h1;
        job.ld_a1 = width1;
        job.nc = nc;
        job.labels = yc;
        job.targets = tc;
        job.ld_t = rows.ld_t;
        job.scale = ps.scale;
        job.want_grad = want_grad;
        job.g = want_grad ? w.grad.data() + p * (D - ps.W1) : nullptr;
        job.loss = &w.loss[p];
        job.correct = &w.correct[p];
        fused::run(ps.isa, job, w.fused);
        continue;
      }
      // Forward through the per-vector layers.
      const T* a_prev = a1 + p * h1;
      int64_t ld_prev = width1;
      for (int l = 1; l < L; ++l) {
        const int in = s.sizes[l], out = s.sizes[l + 1];
        T* z = w.acts[l].data();
        blas::gemm(blas::N, blas::T, nc, out, in, T(1), a_prev, int(ld_prev), th + ps.woff[l], in,
                   T(0), z, out);
        if (s.bias) add_bias(z, out, nc, out, th + ps.boff[l]);
        activate_values(ps.level, s.activation(l), z, int64_t(nc) * out);
        a_prev = z;
        ld_prev = out;
      }
      // Loss, and dLoss/dz of the last layer.
      T* delta = L == 1 ? a1 + p * h1 : (want_grad ? w.deltas[L - 1].data() : nullptr);
      const int64_t ld_delta = L == 1 ? width1 : dout;
      w.loss[p] += output_loss(ps.level, s, a_prev, ld_prev, nc, yc, tc, rows.ld_t,
                               delta, ld_delta, ps.scale, want_grad, w.scratch.data(),
                               &w.correct[p]);
      if (!want_grad) continue;
      T* g = w.grad.data() + p * (D - ps.W1);  // parameter k lives at g[k - W1]
      // Backward through the per-vector layers down to the first layer's deltas.
      for (int l = L - 1; l >= 1; --l) {
        const int in = s.sizes[l], out = s.sizes[l + 1];
        const T* dl = w.deltas[l].data();
        const T* a_in = l == 1 ? a1 + p * h1 : w.acts[l - 1].data();
        const int ld_in = l == 1 ? int(width1) : in;
        blas::gemm(blas::T, blas::N, out, in, nc, T(1), dl, out, a_in, ld_in, T(1),
                   g + (ps.woff[l] - ps.W1), in);
        if (s.bias) add_column_sums(dl, out, nc, out, g + (ps.boff[l] - ps.W1));
        T* da = l == 1 ? w.tmp.data() : w.deltas[l - 1].data();
        blas::gemm(blas::N, blas::N, nc, in, out, T(1), dl, out, th + ps.woff[l], in, T(0), da,
                   in);
        const Activation act = s.activation(l - 1);
        if (l == 1) {
          // The first layer's deltas overwrite its activations in place.
          T* blk = a1 + p * h1;
          derivative_values(ps.level, act, blk, width1, da, h1, nc, h1);
          for (int i = 0; i < nc; ++i)
            std::memcpy(blk + int64_t(i) * width1, da + int64_t(i) * h1, sizeof(T) * h1);
        } else {
          derivative_values(ps.level, act, w.acts[l - 1].data(), in, da, in, nc, in);
        }
      }
      if (s.bias) add_column_sums(a1 + p * h1, width1, nc, h1, g + (ps.boff[0] - ps.W1));
    }
    // Shared first-layer weight gradient: (P*h1, nc) x (nc, d0) in one product; with
    // a projection, first the deltas are combined (K*h1 columns instead of P*h1).
    if (want_grad && ps.comb.proj_t) {
      const int64_t wk = ps.comb.K * h1;
      T* dp = w.delta_proj.data();
      mix::Job<T> m{nc, h1, int(ps.comb.K), int(P), nullptr, ps.comb.proj_t, a1, width1, dp, wk};
      mix::run(ps.level, m);
      weight_product(ps, w, r0, nc, xc, dp, wk, wk, c == c_begin);
    } else if (want_grad) {
      weight_product(ps, w, r0, nc, xc, a1, width1, width1, c == c_begin);
    }
  }
}

// out (n, m) = X w^T over all n samples, X (n, d0) and w (m, d0): the chunks of sp on
// its threads, BLAS single-threaded inside; with `panels` (sparse inputs: all samples'
// rows, sp's chunks starting on their groups) from the inputs' nonzeros.
template <typename T>
void sample_products(const T* X, int d0, int64_t n, const Split& sp, const T* w, int64_t m,
                     T* out, const sparse::Panels<T>* panels) {
  blas::SingleThreaded single_threaded_blas;
  const std::vector<T> wt = panels ? sparse::transposed(w, m, d0) : std::vector<T>();
  const isa::Level level = isa::chosen();
#pragma omp parallel for num_threads(sp.nt) schedule(static)
  for (int64_t c = 0; c < sp.nchunks; ++c) {
    denormals::Flush flush;  // this thread, for this work
    const int64_t r0 = c * sp.C;
    const int nc = int(std::min<int64_t>(sp.C, n - r0));
    if (panels)
      sparse::run(level, sparse::PanelJob<T>{panels->view(r0, nc), wt.data(), m, m,
                                             out + r0 * m, m, false});
    else
      blas::gemm(blas::N, blas::T, nc, int(m), d0, T(1), X + r0 * d0, d0, w, d0, T(0),
                 out + r0 * m, int(m));
  }
}

// Runs a pass on the threads: thread t takes a contiguous block of chunks.
template <typename T>
void run_split(const Pass<T>& ps, const Split& sp,
               std::vector<std::unique_ptr<Workspace<T>>>& work) {
  for (int t = 0; t < sp.nt; ++t) {
    allocate(*work[t], ps);
    clear(*work[t]);
  }
  chunks::on_threads(sp.nchunks, sp.nt, [&](int t, int64_t c_begin, int64_t c_end) {
    run_chunks(ps, c_begin, c_end, *work[t]);
  });
}

// Mean losses (and accuracies) of P vectors, summed over the threads in a fixed order.
template <typename T>
void reduce_losses(const std::vector<std::unique_ptr<Workspace<T>>>& work, int nt, int64_t P,
                   int64_t N, double inv, T* loss_out, T* acc_out) {
  for (int64_t p = 0; p < P; ++p) {
    double l = 0.0, c = 0.0;
    for (int t = 0; t < nt; ++t) {
      l += work[t]->loss[p];
      c += work[t]->correct[p];
    }
    loss_out[p] = T(l * inv);
    if (acc_out) acc_out[p] = T(c / double(N));
  }
}

// out[i] = sum over the threads (in a fixed order) of row `row`'s first-layer weight
// gradient, i < W1 = h1 d0: dw1[row * W1 + i], or where the pass keeps it transposed
// (sparse_grad) the entries (j, row * h1 + r) of dw1 (d0, width) for i = r d0 + j.
template <typename T>
void sum_first_layer(const std::vector<std::unique_ptr<Workspace<T>>>& work, int nt,
                     const Pass<T>& ps, int64_t row, T* out) {
  const int d0 = ps.spec->sizes[0], h1 = ps.spec->sizes[1];
  if (!ps.sparse_grad) {
    chunks::sum_in_order(nt, ps.W1, [&](int t) { return work[t]->dw1.data() + row * ps.W1; },
                         out);
    return;
  }
  const int64_t width = first_grad_width(ps);
  for (int r = 0; r < h1; ++r)
    for (int j = 0; j < d0; ++j) {
      const int64_t at = int64_t(j) * width + row * h1 + r;
      T v = T(0);
      for (int t = 0; t < nt; ++t) v += work[t]->dw1[at];
      out[int64_t(r) * d0 + j] = v;
    }
}

// grad_out (P, D): the threads' gradients summed in a fixed order.
template <typename T>
void reduce_gradients(const std::vector<std::unique_ptr<Workspace<T>>>& work, int nt,
                      const Pass<T>& ps, T* grad_out) {
  const int64_t P = ps.P, D = ps.D, W1 = ps.W1;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t p = 0; p < P; ++p) {
    denormals::Flush flush;  // this thread, for this work
    T* g = grad_out + p * D;
    sum_first_layer(work, nt, ps, p, g);
    chunks::sum_in_order(nt, D - W1, [&](int t) { return work[t]->grad.data() + p * (D - W1); },
                         g + W1);
  }
}

}  // namespace

// Workspaces for nt threads: the landscape's cached ones when no other call holds
// them, else fresh ones.
template <typename T>
struct Landscape<T>::WorkspaceLease {
  std::unique_lock<std::mutex> lock;
  std::vector<std::unique_ptr<Workspace<T>>> local;
  std::vector<T> local_gather;
  std::vector<std::unique_ptr<Workspace<T>>>& work;
  std::vector<T>& gather;  // the first layers of all vectors
  WorkspaceLease(const Landscape<T>& ls, int nt)
      : lock(ls.cache_mutex_, std::try_to_lock),
        work(lock.owns_lock() ? ls.cache_ : local),
        gather(lock.owns_lock() ? ls.gather_cache_ : local_gather) {
    while (int(work.size()) < nt) work.push_back(std::make_unique<Workspace<T>>());
  }
};

template <typename T>
Landscape<T>::~Landscape() = default;

template <typename T>
void Landscape<T>::check_call(const T* theta, int64_t P, const int64_t* samples,
                              int64_t n_samples) const {
  math::check_vectors(theta, P, spec_.sizes[1]);
  if (samples) math::check_samples(samples, n_samples, n_);
}

template <typename T>
void Landscape<T>::evaluate(const T* theta, int64_t P, T* loss_out, T* grad_out, T* acc_out,
                            const int64_t* samples, int64_t n_samples) const {
  if (reduced_) return reduced_->evaluate(theta, P, loss_out, grad_out, acc_out, samples, n_samples);
  check_call(theta, P, samples, n_samples);
  const MLPSpec& s = spec_;
  const int d0 = s.sizes[0], h1 = s.sizes[1];
  const int64_t D = num_params_, W1 = int64_t(h1) * d0, width1 = P * h1;
  const int64_t N = samples ? n_samples : n_;
  const bool want_grad = grad_out != nullptr;

  int nt = chunks::thread_count(options_.threads);
  WorkspaceLease lease(*this, nt);
  auto& work = lease.work;
  // Gather the first layer of all P vectors: (P*h1, d0) and (P*h1).
  lease.gather.resize(P * W1 + (s.bias ? width1 : 0));
  T* w1all = lease.gather.data();
  T* b1all = s.bias ? w1all + P * W1 : nullptr;
  for (int64_t p = 0; p < P; ++p) {
    std::memcpy(w1all + p * W1, theta + p * D, sizeof(T) * W1);
    if (s.bias) std::memcpy(b1all + p * h1, theta + p * D + s.bias_offset(0), sizeof(T) * h1);
  }
  const double inv = math::mean_factor(s, N);

  if (options_.chunk <= 0 && nt > 1 && P >= nt && N < nt * chunk_size(P)) {
    // Too few samples to give every thread a chunk (e.g. a shared minibatch): split
    // the vectors over the threads instead; each thread sees all samples.
    std::vector<Pass<T>> passes;
    std::vector<int64_t> first(nt + 1), nchunk(nt);
    for (int g = 0; g <= nt; ++g) first[g] = P * g / nt;
    for (int g = 0; g < nt; ++g) {
      const int64_t p0 = first[g], pg = first[g + 1] - p0;
      const int64_t Cg = std::min<int64_t>(chunk_size(pg), N);
      nchunk[g] = (N + Cg - 1) / Cg;
      passes.push_back(make_pass(theta + p0 * D, pg, w1all + p0 * W1,
                                 s.bias ? b1all + p0 * h1 : nullptr, samples, N, Cg,
                                 want_grad));
      allocate(*work[g], passes[g]);
      clear(*work[g]);
    }
    {
      blas::SingleThreaded single_threaded_blas;
#pragma omp parallel num_threads(nt)
      {
        denormals::Flush flush;  // this thread, for this work
        const int g = omp_get_thread_num();
        run_chunks(passes[g], 0, nchunk[g], *work[g]);
      }
    }
    for (int g = 0; g < nt; ++g) {
      const Workspace<T>& w = *work[g];
      for (int64_t i = 0; i < first[g + 1] - first[g]; ++i) {
        const int64_t p = first[g] + i;
        loss_out[p] = T(w.loss[i] * inv);
        if (acc_out) acc_out[p] = T(w.correct[i] / double(N));
        if (want_grad) {
          std::memcpy(grad_out + p * D, &w.dw1[i * W1], sizeof(T) * W1);
          std::memcpy(grad_out + p * D + W1, &w.grad[i * (D - W1)], sizeof(T) * (D - W1));
        }
      }
    }
    return;
  }

  const Split sp = split_samples(N, chunk_size(P), nt, options_.chunk <= 0,
                                 samples ? 1 : chunk_multiple());
  nt = sp.nt;
  Pass<T> ps = make_pass(theta, P, w1all, b1all, samples, N, sp.C, want_grad);
  std::vector<T> w1t;
  if (sparse_) choose_sparse(ps, sp, width1);
  if (ps.sparse) {
    w1t = sparse::transposed(w1all, width1, d0);
    ps.w1t = w1t.data();
  }
  run_split(ps, sp, work);
  reduce_losses(work, nt, P, N, inv, loss_out, acc_out);
  if (want_grad) reduce_gradients(work, nt, ps, grad_out);
}

template <typename T>
void Landscape<T>::evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B,
                                 T* loss_out, T* grad_out) const {
  // (with zero columns dropped, each vector is translated by the thread that runs it)
  if (reduced_)
    return inner().evaluate_each_from(theta, P, samples, B, loss_out, grad_out,
                                      &reduced_->columns());
  evaluate_each_from(theta, P, samples, B, loss_out, grad_out, nullptr);
}

template <typename T>
void Landscape<T>::evaluate_each_from(const T* theta_in, int64_t P, const int64_t* samples,
                                      int64_t B, T* loss_out, T* grad_out,
                                      const reduced::Columns* full) const {
  check_call(theta_in, P, samples, P * B);
  if (!samples || B <= 0) throw std::invalid_argument("samples: need (P, B) sample indices");
  const MLPSpec& s = spec_;
  const int d0 = s.sizes[0], h1 = s.sizes[1];
  const int64_t D = num_params_, W1 = int64_t(h1) * d0;
  const int64_t D_in = full ? full->D : D;  // the callers' vectors' length
  const bool want_grad = grad_out != nullptr;
  int nt = chunks::thread_count(options_.threads);
  nt = int(std::max<int64_t>(1, std::min<int64_t>(nt, P)));
  // One vector per pass; its first layer is read in place from theta (or from its
  // kept columns' copy).
  const Pass<T> proto = make_pass(theta_in, 1, theta_in, nullptr, samples, B, B, want_grad);
  WorkspaceLease lease(*this, nt);
  auto& work = lease.work;
  for (auto& w : work) {
    allocate(*w, proto);
    if (full) w->vector.resize(D);
  }
  const double inv = math::mean_factor(s, B);
  blas::SingleThreaded single_threaded_blas;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t p = 0; p < P; ++p) {
    denormals::Flush flush;  // this thread, for this work
    Workspace<T>& w = *work[omp_get_thread_num()];
    Pass<T> ps = proto;
    ps.theta = theta_in + p * D_in;
    if (full) {
      reduced::gather_one(*full, ps.theta, w.vector.data());
      ps.theta = w.vector.data();
    }
    ps.w1all = ps.theta;
    ps.b1all = s.bias ? ps.theta + s.bias_offset(0) : nullptr;
    ps.samples = samples + p * B;
    clear(w);
    run_chunks(ps, 0, 1, w);
    loss_out[p] = T(w.loss[0] * inv);
    if (want_grad) {
      T* g = grad_out + p * D_in;
      if (full) {  // the gradient laid out on the kept columns, then spread out
        std::memcpy(w.vector.data(), w.dw1.data(), sizeof(T) * W1);
        std::memcpy(w.vector.data() + W1, w.grad.data(), sizeof(T) * (D - W1));
        reduced::scatter_one(*full, w.vector.data(), g, true);
      } else {
        std::memcpy(g, w.dw1.data(), sizeof(T) * W1);
        std::memcpy(g + W1, w.grad.data(), sizeof(T) * (D - W1));
      }
    }
  }
}

template <typename T>
detail::Pass<T> Landscape<T>::make_pass(const T* theta, int64_t P, const T* w1all, const T* b1all,
                                const int64_t* samples, int64_t N, int64_t C,
                                bool want_grad) const {
  const MLPSpec& s = spec_;
  Pass<T> ps;
  ps.spec = &spec_;
  ps.D = num_params_;
  ps.W1 = int64_t(s.sizes[0]) * s.sizes[1];
  ps.data = {X_.data(), labels_.empty() ? nullptr : labels_.data(),
             targets_.empty() ? nullptr : targets_.data(), s.sizes[0], s.sizes.back(),
             s.loss == Loss::MSE && targets_.empty()};
  ps.theta = theta;
  ps.P = P;
  ps.w1all = w1all;
  ps.b1all = b1all;
  ps.samples = samples;
  ps.N = N;
  ps.C = C;
  ps.want_grad = want_grad;
  ps.scale = T(math::mean_factor(s, N));
  ps.isa = fused::choose();
  ps.level = isa::chosen();
  ps.held = panels_.get();
  for (int l = 0; l < s.num_layers(); ++l) {
    ps.woff.push_back(s.weight_offset(l));
    ps.boff.push_back(s.bias ? s.bias_offset(l) : 0);
  }
  return ps;
}

template <typename T>
bool Landscape<T>::prepare_lines(const T* x, const T* d, int64_t P, LineCache<T>& cache,
                                 const int64_t* carried, const T* u) const {
  if (reduced_)
    return inner().prepare_lines(reduced_->in(x, P).data(), reduced_->in(d, P).data(), P, cache,
                                 carried, u);
  const MLPSpec& s = spec_;
  const int d0 = s.sizes[0], h1 = s.sizes[1];
  const int64_t D = num_params_, W1 = int64_t(h1) * d0, width1 = P * h1;
  const int64_t Pold = cache.P, wold = Pold * h1;
  cache.P = 0;
  if (P < 1 || width1 > std::numeric_limits<int>::max()) return false;
  const double bytes = 2.0 * double(n_) * double(width1) * sizeof(T);
  if (bytes > double(options_.line_cache_bytes)) return false;
  // Which lines continue a held line (its product carried), which need a product.
  std::vector<int64_t> from(P, -1), fresh;
  for (int64_t p = 0; p < P; ++p) {
    if (carried && carried[p] >= 0 && carried[p] < Pold) from[p] = carried[p];
    else fresh.push_back(p);
  }
  const int64_t nf = int64_t(fresh.size()), wf = nf * h1;
  std::vector<T> wx(std::max<int64_t>(nf, 1) * W1), wd(P * W1);
  for (int64_t k = 0; k < nf; ++k) std::memcpy(&wx[k * W1], x + fresh[k] * D, sizeof(T) * W1);
  for (int64_t p = 0; p < P; ++p) std::memcpy(&wd[p * W1], d + p * D, sizeof(T) * W1);
  const Split sp = split_samples(n_, chunk_size(P), chunks::thread_count(options_.threads),
                                 true, sparse_ ? sparse::kPanel : 1);
  blas::SingleThreaded single_threaded_blas;
  const isa::Level level = isa::chosen();
  const sparse::Panels<T>* panels = sparse_ ? &panels_->rows : nullptr;
  const std::vector<T> wxt =
      panels && nf < P ? sparse::transposed(wx.data(), wf, d0) : std::vector<T>();
  // Every held line continued in its own column: A is updated in place, else the new
  // A is formed beside the held A and B, which it reads.
  bool in_place = P == Pold;
  for (int64_t p = 0; in_place && p < P; ++p) in_place = from[p] < 0 || from[p] == p;
  if (nf < P) {
    // The new A from the held lines (A_l - u B_l) and products of the fresh ones.
    std::vector<T>& next = in_place ? cache.A : cache.next;
    if (!in_place) next.resize(size_t(n_) * width1);
    std::vector<std::vector<T>> tmp(sp.nt);
#pragma omp parallel num_threads(sp.nt)
    {
      denormals::Flush flush;  // this thread, for this work
      std::vector<T>& t = tmp[omp_get_thread_num()];
#pragma omp for schedule(static)
      for (int64_t c = 0; c < sp.nchunks; ++c) {
        const int64_t r0 = c * sp.C;
        const int nc = int(std::min<int64_t>(sp.C, n_ - r0));
        if (nf > 0) {
          t.resize(size_t(nc) * wf);
          if (panels)
            sparse::run(level, sparse::PanelJob<T>{panels->view(r0, nc), wxt.data(), wf, wf,
                                                   t.data(), wf, false});
          else
            blas::gemm(blas::N, blas::T, nc, int(wf), d0, T(1), X_.data() + r0 * d0, d0,
                       wx.data(), d0, T(0), t.data(), int(wf));
        }
        T* out = &next[r0 * width1];
        for (int64_t k = 0, p = 0; p < P; ++p) {
          if (from[p] >= 0) {  // A_l - u B_l, in place when l = p
            mix::LineJob<T> m{nc, h1, 1, &from[p], &u[p], cache.A.data() + r0 * wold,
                              cache.B.data() + r0 * wold, wold, out + p * h1, width1};
            mix::run(level, m);
          } else {
            for (int i = 0; i < nc; ++i)
              std::memcpy(out + int64_t(i) * width1 + p * h1, t.data() + int64_t(i) * wf + k * h1,
                          sizeof(T) * h1);
            ++k;
          }
        }
      }
    }
    if (!in_place) {  // (the active lines changed: rare; the old A is released)
      cache.A.swap(cache.next);
      std::vector<T>().swap(cache.next);
    }
  } else {
    cache.A.resize(size_t(n_) * width1);
  }
  cache.B.resize(size_t(n_) * width1);
  if (nf == P)
    sample_products(X_.data(), d0, n_, sp, wx.data(), width1, cache.A.data(), panels);
  sample_products(X_.data(), d0, n_, sp, wd.data(), width1, cache.B.data(), panels);
  cache.x.assign(x, x + P * D);
  cache.d.assign(d, d + P * D);
  cache.P = P;
  return true;
}

template <typename T>
void Landscape<T>::line_values(const LineCache<T>& cache, const int64_t* lines, const T* u,
                               int64_t n, T* loss_out, T* grad_out) const {
  if (reduced_ && n >= 1) {
    const reduced::Buffer<T> g = reduced_->room(grad_out, n);
    inner().line_values(cache, lines, u, n, loss_out, g.data());
    return reduced_->out(g, n, grad_out);
  }
  if (n < 1) return;
  for (int64_t k = 0; k < n; ++k)
    if (lines[k] < 0 || lines[k] >= cache.P)
      throw std::invalid_argument("lines: index outside the prepared lines");
  const MLPSpec& s = spec_;
  const int h1 = s.sizes[1];
  const int64_t D = num_params_;
  // The points themselves, for the per-vector layers and the first-layer bias.
  std::vector<T> theta(n * D), b1(s.bias ? n * h1 : 0);
  for (int64_t k = 0; k < n; ++k) {
    const T* x = &cache.x[lines[k] * D];
    const T* d = &cache.d[lines[k] * D];
    T* t = &theta[k * D];
    for (int64_t i = 0; i < D; ++i) t[i] = x[i] - u[k] * d[i];
    if (s.bias) std::memcpy(&b1[k * h1], t + s.bias_offset(0), sizeof(T) * h1);
  }
  const int64_t N = n_;
  const Split sp = split_samples(
      N, chunk_size(n), chunks::thread_count(options_.threads), true);
  Pass<T> ps = make_pass(theta.data(), n, nullptr, s.bias ? b1.data() : nullptr, nullptr, N,
                         sp.C, grad_out != nullptr);
  ps.first = detail::FirstLayer::Line;
  ps.line = {cache.A.data(), cache.B.data(), cache.P * h1, lines, u};
  WorkspaceLease lease(*this, sp.nt);
  run_split(ps, sp, lease.work);
  const double inv = math::mean_factor(s, N);
  reduce_losses(lease.work, sp.nt, n, N, inv, loss_out, static_cast<T*>(nullptr));
  if (grad_out) reduce_gradients(lease.work, sp.nt, ps, grad_out);
}

template <typename T>
std::shared_ptr<typename Landscape<T>::HeldBasis> Landscape<T>::find_held(const T* w1) const {
  const int64_t W1 = int64_t(spec_.sizes[1]) * spec_.sizes[0];
  for (const auto& h : held_)
    if (std::memcmp(h->w1.data(), w1, sizeof(T) * W1) == 0) return h;
  return nullptr;
}

template <typename T>
void Landscape<T>::hold_basis(const T* V, int64_t Q) const {
  if (reduced_) return reduced_->hold_basis(V, Q);
  check_call(V, Q, nullptr, 0);
  const int d0 = spec_.sizes[0], h1 = spec_.sizes[1];
  const int64_t D = num_params_, W1 = int64_t(h1) * d0;
  const int64_t bytes = int64_t(sizeof(T)) * (n_ * h1 + W1);
  const int nt = chunks::thread_count(options_.threads);
  std::lock_guard<std::mutex> lock(held_mutex_);
  int64_t total = 0;
  for (const auto& h : held_) total += int64_t(sizeof(T)) * (h->product.size() + h->w1.size());
  for (int64_t q = 0; q < Q; ++q) {
    const T* w1 = V + q * D;
    if (auto h = find_held(w1)) {
      ++h->holds;
      continue;
    }
    if (total + bytes > options_.line_cache_bytes) continue;  // not held: computed per call
    auto h = std::make_shared<HeldBasis>();
    h->w1.assign(w1, w1 + W1);
    h->product.resize(n_ * h1);
    h->holds = 1;
    // (with sparse inputs the chunks start on the panels' groups of rows whatever the
    // chunk option: each row's products are the same bits in any chunk)
    sample_products(X_.data(), d0, n_, split_samples(n_, chunk_size(1), nt, true,
                                                     sparse_ ? sparse::kPanel : 1),
                    w1, h1, h->product.data(), sparse_ ? &panels_->rows : nullptr);
    held_.push_back(std::move(h));
    total += bytes;
  }
}

template <typename T>
void Landscape<T>::release_basis(const T* V, int64_t Q) const {
  if (reduced_) return reduced_->release_basis(V, Q);
  const int64_t D = num_params_;
  std::lock_guard<std::mutex> lock(held_mutex_);
  for (int64_t q = 0; q < Q; ++q)
    if (auto h = find_held(V + q * D); h && --h->holds == 0)
      held_.erase(std::find(held_.begin(), held_.end(), h));
}

template <typename T>
int64_t Landscape<T>::held_basis() const {
  if (reduced_) return inner().held_basis();
  std::lock_guard<std::mutex> lock(held_mutex_);
  return int64_t(held_.size());
}

template <typename T>
void Landscape<T>::evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                                        const int32_t* index, const T* coef, int nnz,
                                        T* loss_out, const T* proj, int64_t K,
                                        T* proj_grad, const int64_t* samples,
                                        int64_t n_samples, T* acc_out) const {
  if (reduced_)
    return reduced_->evaluate_combination(points, P, V, Q, index, coef, nnz, loss_out, proj, K,
                                          proj_grad, samples, n_samples, acc_out);
  check_call(points, P, samples, n_samples);
  math::check_combination(P, Q, index, nnz);
  const MLPSpec& s = spec_;
  const int d0 = s.sizes[0], h1 = s.sizes[1];
  const int64_t D = num_params_, W1 = int64_t(h1) * d0;
  const bool want_grad = proj && proj_grad && K > 0;
  int nt = chunks::thread_count(options_.threads);
  WorkspaceLease lease(*this, nt);
  auto& work = lease.work;
  // The basis vectors' first layers (Q*h1, d0) and the points' first-layer biases.
  lease.gather.resize(Q * W1 + (s.bias ? P * h1 : 0));
  T* v1 = lease.gather.data();
  T* b1 = s.bias ? v1 + Q * W1 : nullptr;
  for (int64_t q = 0; q < Q; ++q) std::memcpy(v1 + q * W1, V + q * D, sizeof(T) * W1);
  for (int64_t p = 0; s.bias && p < P; ++p)
    std::memcpy(b1 + p * h1, points + p * D + s.bias_offset(0), sizeof(T) * h1);
  const int64_t N = samples ? n_samples : n_;
  const Split sp = split_samples(N, chunk_size(P), nt, true, samples ? 1 : chunk_multiple());
  nt = sp.nt;
  Pass<T> ps = make_pass(points, P, nullptr, b1, samples, N, sp.C, want_grad);
  // Held basis vectors (kept alive by this call while another may release them).
  std::vector<std::shared_ptr<const HeldBasis>> held(Q);
  std::vector<const T*> held_rows(Q, nullptr);
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    for (int64_t q = 0; q < Q && !held_.empty(); ++q)
      if ((held[q] = find_held(v1 + q * W1))) held_rows[q] = held[q]->product.data();
  }
  ps.first = detail::FirstLayer::Combination;
  ps.comb.held = held_rows.data();
  ps.comb.v1 = v1;
  ps.comb.Q = Q;
  ps.comb.index = index;
  ps.comb.coef = coef;
  ps.comb.nnz = nnz;
  std::vector<T> proj_t;
  if (want_grad) {
    ps.comb.K = K;
    proj_t.resize(K * P);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t n = 0; n < K; ++n) proj_t[n * P + p] = proj[p * K + n];
    ps.comb.proj_t = proj_t.data();
  }
  std::vector<T> v1t;
  if (sparse_) choose_sparse(ps, sp, Q * h1);
  if (ps.sparse) {
    v1t = sparse::transposed(v1, Q * h1, d0);
    ps.comb_v1t = v1t.data();
  }
  run_split(ps, sp, work);
  const double inv = math::mean_factor(s, N);
  reduce_losses(work, nt, P, N, inv, loss_out, acc_out);
  if (!want_grad) return;
  // proj_grad[n] = [sum_t dW1proj_t[n], sum_p proj[p, n] sum_t grad_t[p]]
  const int64_t rest = D - W1;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t n = 0; n < K; ++n) {
    denormals::Flush flush;  // this thread, for this work
    T* g = proj_grad + n * D;
    sum_first_layer(work, nt, ps, n, g);
    for (int64_t i = 0; i < rest; ++i) g[W1 + i] = T(0);
    for (int64_t p = 0; p < P; ++p) {
      const T c = proj[p * K + n];
      if (c == T(0)) continue;
      for (int t = 0; t < nt; ++t) {
        const T* gp = &work[t]->grad[p * rest];
        for (int64_t i = 0; i < rest; ++i) g[W1 + i] += c * gp[i];
      }
    }
  }
}

namespace {
// The prepared-lines capability: the first-layer products of the lines, kept in one
// LineCache that is reused from one prepare() to the next.
template <typename T>
class LandscapeLines final : public LineEvaluator<T> {
 public:
  explicit LandscapeLines(const Landscape<T>& ls) : ls_(ls) {}
  bool prepare(const T* x, const T* d, int64_t P) override {
    return ls_.prepare_lines(x, d, P, cache_);
  }
  bool prepare_carried(const T* x, const T* d, int64_t P, const int64_t* carried,
                       const T* u) override {
    return ls_.prepare_lines(x, d, P, cache_, carried, u);
  }
  void values(const int64_t* lines, const T* u, int64_t n, T* loss) const override {
    ls_.line_values(cache_, lines, u, n, loss);
  }
  bool accept(const int64_t* lines, const T* u, int64_t n, T* loss, T* grad) override {
    ls_.line_values(cache_, lines, u, n, loss, grad);
    return true;
  }

 private:
  const Landscape<T>& ls_;
  LineCache<T> cache_;
};
}  // namespace

template <typename T>
std::unique_ptr<LineEvaluator<T>> Landscape<T>::line_evaluator() const {
  if (reduced_) return reduced_->line_evaluator();
  return std::make_unique<LandscapeLines<T>>(*this);
}

template class Landscape<float>;
template class Landscape<double>;

}  // namespace losstopo
