#include "losstopo/landscape.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "activations.hpp"
#include "blas.hpp"

namespace losstopo {

using detail::activate;
using detail::derivative_from_output;

template <typename T>
Landscape<T>::Landscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels,
                        const T* targets, EngineOptions options)
    : spec_(std::move(spec)), n_(n), options_(options) {
  spec_.validate();
  if (n <= 0) throw std::invalid_argument("X: need at least one sample");
  if (n > std::numeric_limits<int>::max())
    throw std::invalid_argument("X: more samples than a BLAS dimension can hold");
  num_params_ = spec_.num_params();
  const int d_in = spec_.sizes.front(), d_out = spec_.sizes.back();
  X_.assign(X, X + n * d_in);
  if (spec_.loss == Loss::CrossEntropy) {
    if (!labels) throw std::invalid_argument("y: cross_entropy needs integer labels");
    labels_.assign(labels, labels + n);
    for (int32_t v : labels_)
      if (v < 0 || v >= d_out)
        throw std::invalid_argument("y: label " + std::to_string(v) + " outside [0, " +
                                    std::to_string(d_out) + ")");
  } else if (targets) {
    targets_.assign(targets, targets + n * d_out);
  } else if (d_out != d_in) {
    throw std::invalid_argument("mse without targets reconstructs the input: needs sizes[-1] == sizes[0]");
  }
}

template <typename T>
int64_t Landscape<T>::chunk_size(int64_t P) const {
  if (options_.chunk > 0) return options_.chunk;
  // Keep the first layer's activations for one chunk near 1M numbers.
  const int64_t width = std::max<int64_t>(P * spec_.sizes[1], spec_.sizes[0]);
  int64_t c = (int64_t(1) << 20) / width;
  return std::clamp<int64_t>(c, 64, 4096);
}

namespace {

// Per-sample loss on rows of the output layer; writes dLoss/dz (scaled by `scale`)
// into delta (which may alias out). `scratch` holds one row. Returns the summed
// loss over the rows and adds the number of correct argmax predictions to *correct.
template <typename T>
double output_loss(const MLPSpec& spec, const T* out, int64_t ld_out, int64_t rows,
                   const int32_t* labels, const T* target, int64_t ld_target, T* delta,
                   int64_t ld_delta, T scale, bool want_delta, T* scratch, double* correct) {
  const int k = spec.sizes.back();
  const Activation act = spec.output;
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* o = out + i * ld_out;
    T* d = delta + i * ld_delta;
    if (spec.loss == Loss::CrossEntropy) {
      const int y = labels[i];
      int arg = 0;
      T m = o[0];
      for (int j = 1; j < k; ++j)
        if (o[j] > m) { m = o[j]; arg = j; }
      if (arg == y) *correct += 1.0;
      double s = 0.0;
      for (int j = 0; j < k; ++j) {
        scratch[j] = std::exp(o[j] - m);
        s += double(scratch[j]);
      }
      total += double(m) + std::log(s) - double(o[y]);
      if (want_delta) {
        const T inv = T(1.0 / s);
        for (int j = 0; j < k; ++j) {
          const T a = o[j];
          T p = scratch[j] * inv;
          if (j == y) p -= T(1);
          d[j] = p * scale * derivative_from_output(act, a);
        }
      }
    } else {
      const T* t = target + i * ld_target;
      double s = 0.0;
      for (int j = 0; j < k; ++j) {
        const T a = o[j];
        const T r = a - t[j];
        s += double(r) * double(r);
        if (want_delta) d[j] = T(2) * r * scale * derivative_from_output(act, a);
      }
      total += s;
    }
  }
  return total;
}

// Row-wise c[i, :] += b for a (rows x n) block with leading dimension ld.
template <typename T>
void add_bias(T* c, int64_t ld, int64_t rows, int64_t n, const T* b) {
  for (int64_t i = 0; i < rows; ++i) {
    T* r = c + i * ld;
    for (int64_t j = 0; j < n; ++j) r[j] += b[j];
  }
}

// g[j] += sum_i delta[i, j]
template <typename T>
void add_column_sums(const T* delta, int64_t ld, int64_t rows, int64_t n, T* g) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* r = delta + i * ld;
    for (int64_t j = 0; j < n; ++j) g[j] += r[j];
  }
}

template <typename T>
struct Workspace {
  std::vector<T> xbuf, tbuf;           // gathered inputs / targets (with a sample list)
  std::vector<int32_t> ybuf;           // gathered labels
  std::vector<T> a1;                   // (chunk, P*h1) first-layer outputs, then deltas
  std::vector<std::vector<T>> acts;    // per layer l >= 1: (chunk, h_{l+1}) for one vector
  std::vector<std::vector<T>> deltas;  // same shapes as acts
  std::vector<T> tmp;                  // (chunk, h1)
  std::vector<T> scratch;              // one output row
  std::vector<T> grad;                 // (P, D); the first-layer weights live in dw1
  std::vector<T> dw1;                  // (P*h1, d_in)
  std::vector<double> loss, correct;   // (P)
};

}  // namespace

template <typename T>
void Landscape<T>::evaluate(const T* theta, int64_t P, T* loss_out, T* grad_out, T* acc_out,
                            const int64_t* samples, int64_t n_samples) const {
  if (P <= 0) throw std::invalid_argument("theta: need at least one parameter vector");
  const MLPSpec& s = spec_;
  const int L = s.num_layers();
  const int d0 = s.sizes[0], h1 = s.sizes[1], dout = s.sizes.back();
  const int64_t D = num_params_;
  const int64_t N = samples ? n_samples : n_;
  if (N <= 0) throw std::invalid_argument("samples: need at least one sample");
  if (samples)
    for (int64_t i = 0; i < N; ++i)
      if (samples[i] < 0 || samples[i] >= n_)
        throw std::invalid_argument("samples: index outside the dataset");
  const int64_t W1 = int64_t(h1) * d0;
  const int64_t width1 = P * h1;
  if (width1 > std::numeric_limits<int>::max() || W1 * P > (int64_t(1) << 40))
    throw std::invalid_argument("theta: too many vectors for one call");
  const bool want_grad = grad_out != nullptr;
  const bool mse_on_input = s.loss == Loss::MSE && targets_.empty();

  int nt = options_.threads > 0 ? options_.threads : omp_get_max_threads();
  int64_t C = std::min<int64_t>(chunk_size(P), N);
  if (options_.chunk <= 0) {
    // Balance the threads: a multiple of nt chunks of (nearly) equal size.
    int64_t k = (N + C - 1) / C;
    k = std::min<int64_t>(N, (k + nt - 1) / nt * nt);
    C = (N + k - 1) / k;
  }
  const int64_t nchunks = (N + C - 1) / C;
  nt = int(std::max<int64_t>(1, std::min<int64_t>(nt, nchunks)));

  // Gather the first layer of all P vectors: (P*h1, d0) and (P*h1).
  std::vector<T> w1all(P * W1), b1all(s.bias ? width1 : 0);
  for (int64_t p = 0; p < P; ++p) {
    std::memcpy(&w1all[p * W1], theta + p * D, sizeof(T) * W1);
    if (s.bias) std::memcpy(&b1all[p * h1], theta + p * D + s.bias_offset(0), sizeof(T) * h1);
  }
  std::vector<int64_t> woff(L), boff(L);
  for (int l = 0; l < L; ++l) {
    woff[l] = s.weight_offset(l);
    boff[l] = s.bias ? s.bias_offset(l) : 0;
  }

  std::vector<Workspace<T>> work(nt);
  for (auto& w : work) {
    if (samples) {
      w.xbuf.resize(C * d0);
      if (!labels_.empty()) w.ybuf.resize(C);
      if (!targets_.empty()) w.tbuf.resize(C * dout);
    }
    w.a1.resize(C * width1);
    w.acts.resize(L);
    w.deltas.resize(L);
    for (int l = 1; l < L; ++l) {
      w.acts[l].resize(C * s.sizes[l + 1]);
      if (want_grad) w.deltas[l].resize(C * s.sizes[l + 1]);
    }
    if (want_grad) {
      w.tmp.resize(C * h1);
      w.grad.assign(P * D, T(0));
      w.dw1.assign(P * W1, T(0));
    }
    w.scratch.resize(dout);
    w.loss.assign(P, 0.0);
    w.correct.assign(P, 0.0);
  }

  const T scale = s.loss == Loss::CrossEntropy ? T(1.0 / double(N)) : T(1.0 / (double(N) * dout));
  const T* Xd = X_.data();

  blas::SingleThreaded single_threaded_blas;
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    Workspace<T>& w = work[tid];
    const int64_t c_begin = nchunks * tid / nt, c_end = nchunks * (tid + 1) / nt;
    for (int64_t c = c_begin; c < c_end; ++c) {
      const int64_t r0 = c * C;
      const int nc = int(std::min<int64_t>(C, N - r0));
      const T* xc;
      const int32_t* yc = labels_.empty() ? nullptr : labels_.data() + r0;
      const T* tc = targets_.empty() ? nullptr : targets_.data() + r0 * dout;
      if (samples) {
        for (int i = 0; i < nc; ++i) {
          const int64_t k = samples[r0 + i];
          std::memcpy(&w.xbuf[int64_t(i) * d0], Xd + k * d0, sizeof(T) * d0);
          if (yc) w.ybuf[i] = labels_[k];
          if (tc) std::memcpy(&w.tbuf[int64_t(i) * dout], &targets_[k * dout], sizeof(T) * dout);
        }
        xc = w.xbuf.data();
        if (yc) yc = w.ybuf.data();
        if (tc) tc = w.tbuf.data();
      } else {
        xc = Xd + r0 * d0;
      }
      if (mse_on_input) tc = xc;

      // Shared first layer: (nc, d0) x (d0, P*h1) in one product.
      T* a1 = w.a1.data();
      blas::gemm(blas::N, blas::T, nc, int(width1), d0, T(1), xc, d0, w1all.data(), d0, T(0), a1,
                 int(width1));
      if (s.bias) add_bias(a1, width1, nc, width1, b1all.data());
      activate(s.activation(0), a1, int64_t(nc) * width1);

      for (int64_t p = 0; p < P; ++p) {
        const T* th = theta + p * D;
        // Forward through the per-vector layers.
        const T* a_prev = a1 + p * h1;
        int64_t ld_prev = width1;
        for (int l = 1; l < L; ++l) {
          const int in = s.sizes[l], out = s.sizes[l + 1];
          T* z = w.acts[l].data();
          blas::gemm(blas::N, blas::T, nc, out, in, T(1), a_prev, int(ld_prev), th + woff[l], in,
                     T(0), z, out);
          if (s.bias) add_bias(z, out, nc, out, th + boff[l]);
          activate(s.activation(l), z, int64_t(nc) * out);
          a_prev = z;
          ld_prev = out;
        }
        // Loss, and dLoss/dz of the last layer.
        T* delta = L == 1 ? a1 + p * h1 : (want_grad ? w.deltas[L - 1].data() : nullptr);
        const int64_t ld_delta = L == 1 ? width1 : dout;
        w.loss[p] += output_loss(s, a_prev, ld_prev, nc, yc, tc, tc == xc ? d0 : dout, delta,
                                 ld_delta, scale, want_grad, w.scratch.data(),
                                 &w.correct[p]);
        if (!want_grad) continue;
        T* g = w.grad.data() + p * D;
        // Backward through the per-vector layers down to the first layer's deltas.
        for (int l = L - 1; l >= 1; --l) {
          const int in = s.sizes[l], out = s.sizes[l + 1];
          const T* dl = w.deltas[l].data();
          const T* a_in = l == 1 ? a1 + p * h1 : w.acts[l - 1].data();
          const int ld_in = l == 1 ? int(width1) : in;
          blas::gemm(blas::T, blas::N, out, in, nc, T(1), dl, out, a_in, ld_in, T(1), g + woff[l],
                     in);
          if (s.bias) add_column_sums(dl, out, nc, out, g + boff[l]);
          T* da = l == 1 ? w.tmp.data() : w.deltas[l - 1].data();
          blas::gemm(blas::N, blas::N, nc, in, out, T(1), dl, out, th + woff[l], in, T(0), da, in);
          const Activation act = s.activation(l - 1);
          if (l == 1) {
            // The first layer's deltas overwrite its activations in place.
            T* blk = a1 + p * h1;
            detail::multiply_derivative(act, blk, width1, da, h1, nc, h1);
            for (int i = 0; i < nc; ++i)
              std::memcpy(blk + int64_t(i) * width1, da + int64_t(i) * h1, sizeof(T) * h1);
          } else {
            detail::multiply_derivative(act, w.acts[l - 1].data(), in, da, in, nc, in);
          }
        }
        if (s.bias) add_column_sums(a1 + p * h1, width1, nc, h1, g + boff[0]);
      }
      // Shared first-layer weight gradient: (P*h1, nc) x (nc, d0) in one product.
      if (want_grad)
        blas::gemm(blas::T, blas::N, int(width1), d0, nc, T(1), a1, int(width1), xc, d0, T(1),
                   w.dw1.data(), d0);
    }
  }

  // Reduce over threads in a fixed order.
  const double inv = s.loss == Loss::CrossEntropy ? 1.0 / double(N) : 1.0 / (double(N) * dout);
  for (int64_t p = 0; p < P; ++p) {
    double l = 0.0, c = 0.0;
    for (int t = 0; t < nt; ++t) {
      l += work[t].loss[p];
      c += work[t].correct[p];
    }
    loss_out[p] = T(l * inv);
    if (acc_out) acc_out[p] = T(c / double(N));
  }
  if (want_grad) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; ++p) {
      T* g = grad_out + p * D;
      for (int64_t i = 0; i < W1; ++i) {
        T v = T(0);
        for (int t = 0; t < nt; ++t) v += work[t].dw1[p * W1 + i];
        g[i] = v;
      }
      for (int64_t i = W1; i < D; ++i) {
        T v = T(0);
        for (int t = 0; t < nt; ++t) v += work[t].grad[p * D + i];
        g[i] = v;
      }
    }
  }
}

template class Landscape<float>;
template class Landscape<double>;

}  // namespace losstopo
