// Exact Hessian-vector products of the CPU engine: Pearlmutter's R-operator carried
// through the forward and the backward pass of the MLP, batched over P directions.
//
// With one point theta and P directions (the common case: Lanczos blocks,
// Hutchinson probes) the forward pass and the plain backward pass run once per
// chunk; only the directional parts run per direction. The first layer's input is
// shared, so its two products per chunk (X V1^T forward, R{delta1}^T X backward)
// are single large GEMMs over all directions, as in Landscape::evaluate. Chunks are
// split statically over threads and summed in a fixed order: results are bitwise
// reproducible for a given thread count and chunk size.
//
// Per layer l (a_{-1} = X, R{X} = 0):
//   z_l = a_{l-1} W_l^T + b_l,          a_l = f(z_l)
//   R z_l = R a_{l-1} W_l^T + a_{l-1} V_l^T + vb_l,  R a_l = f'(z_l) R z_l
//   delta_{l-1} = (delta_l W_l) f'(z_{l-1})
//   R delta_{l-1} = (R delta_l W_l + delta_l V_l) f'(z_{l-1})
//                   + delta_{l-1} (f''/f')(z_{l-1}) R z_{l-1}
//   (H v)_{W_l} = R delta_l^T a_{l-1} + delta_l^T R a_{l-1},  (H v)_{b_l} = sum R delta_l
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "blas.hpp"
#include "block_ops.hpp"
#include "chunk_loop.hpp"
#include "denormals.hpp"
#include "input_panels.hpp"
#include "isa.hpp"
#include "losstopo/landscape.hpp"
#include "network_math.hpp"
#include "reduced_inputs.hpp"

namespace losstopo {

namespace {

// A (rows x cols) block of a row-major buffer with leading dimension ld.
template <typename T>
struct View {
  T* p;
  int64_t ld;
  T* row(int64_t i) const { return p + i * ld; }
};

// ra = act'(a) rz, or with delta: rd = rd act'(a) + delta ratio(a) rz (the R-operator
// of delta_{l-1}; rd holds R delta_l W_l + delta_l V_l on entry).
template <typename T>
void r_activation(Activation act, View<T> a, View<T> rz, View<T> out, const View<T>* delta,
                  int rows, int cols) {
  math::dispatch(act, [&](auto tag) {
    constexpr Activation A = decltype(tag)::value;
    for (int i = 0; i < rows; ++i) {
      const T* ar = a.row(i);
      const T* zr = rz.row(i);
      T* o = out.row(i);
      if (!delta) {
        for (int j = 0; j < cols; ++j) o[j] = math::derivative<A>(ar[j]) * zr[j];
      } else {
        const T* dr = delta->row(i);
        for (int j = 0; j < cols; ++j)
          o[j] = o[j] * math::derivative<A>(ar[j]) +
                 dr[j] * math::curvature_ratio<A>(ar[j]) * zr[j];
      }
    }
  });
}

// C (m x n) += or = op(A) op(B) on views.
template <typename T>
void gemm(blas::Trans ta, blas::Trans tb, int m, int n, int k, View<T> a, View<T> b, T beta,
          View<T> c) {
  blas::gemm(ta, tb, m, n, k, T(1), a.p, int(a.ld), b.p, int(b.ld), beta, c.p, int(c.ld));
}

// One thread's buffers.
template <typename T>
struct HvpWork {
  chunks::Gather<T> gather;                 // a chunk's rows (with a sample list)
  std::vector<T> A1, D1;                    // (C, Pt*h1): first-layer outputs, deltas
  std::vector<T> RZ1, RA1, RD1;             // (C, P*h1): their directional derivatives
  std::vector<std::vector<T>> acts, delta;  // layer l >= 1: (Pt, C, h_{l+1})
  std::vector<std::vector<T>> rz, ra, rd;   // layer l >= 1: (C, h_{l+1}), one direction
  std::vector<T> hv, g;                     // (P, D), (Pt, D) without the first weights
  std::vector<T> hw1, gw1;                  // (P*h1, d0), (Pt*h1, d0)
  std::vector<double> loss;                 // (Pt)
};

}  // namespace

template <typename T>
void Landscape<T>::hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P, T* hv_out,
                                  T* loss_out, T* grad_out, const int64_t* samples,
                                  int64_t n_samples) const {
  if (reduced_)
    return reduced_->hessian_vector(theta, Pt, v, P, hv_out, loss_out, grad_out, samples, n_samples);
  check_call(theta, Pt, samples, n_samples);
  math::check_vectors(v, P, spec_.sizes[1]);
  if (Pt != 1 && Pt != P)
    throw std::invalid_argument("theta: expected one point or one per direction (" +
                                std::to_string(P) + "), got " + std::to_string(Pt));
  if (!hv_out) throw std::invalid_argument("hv: need an output array");
  const MLPSpec& s = spec_;
  const int L = s.num_layers(), d0 = s.sizes[0], h1 = s.sizes[1], dout = s.sizes.back();
  const int64_t D = num_params_, W1 = int64_t(h1) * d0, R1 = D - W1;
  const int64_t N = samples ? n_samples : n_;
  const bool want_grad = grad_out != nullptr;
  const bool mse_on_input = s.loss == Loss::MSE && targets_.empty();
  const T scale = T(math::mean_factor(s, N));
  std::vector<int64_t> woff(L), boff(L);
  for (int l = 0; l < L; ++l) {
    woff[l] = s.weight_offset(l);
    boff[l] = s.bias ? s.bias_offset(l) : 0;
  }
  // The first layers gathered: theta's (Pt*h1, d0) and the directions' (P*h1, d0).
  std::vector<T> w1t(Pt * W1), v1(P * W1), b1t, vb1;
  for (int64_t p = 0; p < Pt; ++p) std::memcpy(&w1t[p * W1], theta + p * D, sizeof(T) * W1);
  for (int64_t p = 0; p < P; ++p) std::memcpy(&v1[p * W1], v + p * D, sizeof(T) * W1);
  if (s.bias) {
    b1t.resize(Pt * h1);
    vb1.resize(P * h1);
    for (int64_t p = 0; p < Pt; ++p)
      std::memcpy(&b1t[p * h1], theta + p * D + boff[0], sizeof(T) * h1);
    for (int64_t p = 0; p < P; ++p) std::memcpy(&vb1[p * h1], v + p * D + boff[0], sizeof(T) * h1);
  }

  const int threads = chunks::thread_count(options_.threads);
  const chunks::Data<T> data{X_.data(), labels_.empty() ? nullptr : labels_.data(),
                             targets_.empty() ? nullptr : targets_.data(), d0, dout,
                             mse_on_input};
  const bool balance = options_.chunk <= 0;
  // Sparse inputs: the first layer's products from the held panels, the chunks starting
  // on their blocks (all samples, the chunk size the engine's), the first-layer
  // gradients kept transposed, (d0, width), until the threads' sums.
  const bool sparse_in = sparse_ && !samples && balance;
  const int64_t block = detail::InputPanels<T>::kBlock;
  auto split = [&](int64_t vectors) {
    return blocks::split_samples(N, balance ? chunk_size(vectors) : options_.chunk, threads,
                                 balance, sparse_in ? block : 1);
  };
  const blocks::Split sp = split(P + Pt);
  const int64_t C = sp.C, nchunks = sp.nchunks;
  const int nt = sp.nt;
  const int64_t wt = Pt * h1, wp = P * h1;
  const isa::Level level = isa::chosen();
  std::vector<T> w1tt, v1tt;  // sparse_in: the first layers transposed, (d0, width)
  if (sparse_in) {
    w1tt = sparse::transposed(w1t.data(), wt, d0);
    v1tt = sparse::transposed(v1.data(), wp, d0);
  }
  // out (nc, m) = X w^T for the chunk's rows from r0: dense, or from the held row panels
  // with w transposed (wtt).
  auto first_product = [&](int64_t r0, int nc, View<T> X, const T* w, const T* wtt, int64_t m,
                           View<T> out) {
    if (sparse_in)
      sparse::run(level, sparse::PanelJob<T>{panels_->rows.view(r0, nc), wtt, m, m, out.p,
                                             out.ld, false});
    else
      gemm(blas::N, blas::T, nc, int(m), d0, X, View<T>{const_cast<T*>(w), d0}, T(0), out);
  };
  // g (m, d0) = or += delta^T X over the chunk's rows; transposed, (d0, m), from the
  // held column panels of its blocks.
  auto first_gradient = [&](int64_t r0, int nc, View<T> X, View<T> delta, int64_t m,
                            bool first, T* g) {
    if (!sparse_in) {
      gemm(blas::T, blas::N, int(m), d0, nc, delta, X, first ? T(0) : T(1), View<T>{g, d0});
      return;
    }
    panels_->gradient(level, r0, nc, delta.p, delta.ld, m, g, first);
  };

  // One point over all samples without the gradient: its forward and plain backward
  // pass are kept (or found) in the point cache, computed in chunks that do not
  // depend on P, so results are the same whether they were kept or not.
  int64_t widths = 2 * h1;
  for (int l = 1; l < L; ++l) widths += 2 * s.sizes[l + 1];
  const bool cacheable = Pt == 1 && !samples && !want_grad &&
                         double(N) * double(widths) * sizeof(T) <=
                             double(options_.line_cache_bytes);
  std::unique_lock<std::mutex> point_lock(point_mutex_, std::defer_lock);
  detail::PointCache<T>* pc = nullptr;
  bool hit = false;
  if (cacheable) {
    point_lock.lock();
    pc = &point_;
    hit = pc->valid && pc->threads == threads && pc->chunk == options_.chunk &&
          int64_t(pc->theta.size()) == D &&
          std::memcmp(pc->theta.data(), theta, sizeof(T) * D) == 0;
    if (!hit) {
      pc->valid = false;
      pc->A1.resize(size_t(N) * h1);
      pc->D1.resize(size_t(N) * h1);
      pc->acts.resize(L);
      pc->delta.resize(L);
      for (int l = 1; l < L; ++l) {
        pc->acts[l].resize(size_t(N) * s.sizes[l + 1]);
        pc->delta[l].resize(size_t(N) * s.sizes[l + 1]);
      }
    }
  }

  std::vector<HvpWork<T>> work(nt);
  for (auto& w : work) {
    if (samples) w.gather.reserve(data, C);
    if (!pc) {
      w.A1.resize(C * wt);
      w.D1.resize(C * wt);
    }
    w.RZ1.resize(C * wp);
    w.RA1.resize(C * wp);
    w.RD1.resize(C * wp);
    w.acts.resize(L);
    w.delta.resize(L);
    w.rz.resize(L);
    w.ra.resize(L);
    w.rd.resize(L);
    for (int l = 1; l < L; ++l) {
      const int64_t out = s.sizes[l + 1];
      if (!pc) {
        w.acts[l].resize(Pt * C * out);
        w.delta[l].resize(Pt * C * out);
      }
      w.rz[l].resize(C * out);
      w.ra[l].resize(C * out);
      w.rd[l].resize(C * out);
    }
    w.hv.assign(P * R1, T(0));
    w.hw1.resize(wp * d0);
    if (want_grad) {
      w.g.assign(Pt * R1, T(0));
      w.gw1.resize(wt * d0);
    }
    w.loss.assign(Pt, 0.0);
  }

  // Chunks [c_begin, c_end) of Cc rows: the point's passes (do_point) and the
  // directions' (do_r).
  auto run = [&](int64_t c_begin, int64_t c_end, HvpWork<T>& w, int64_t Cc, bool do_point,
                 bool do_r) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      const int64_t r0 = c * Cc;
      const int nc = int(std::min<int64_t>(Cc, N - r0));
      const chunks::Rows<T> rows = chunks::rows(data, samples, r0, nc, w.gather);
      const T* xc = rows.x;
      const int32_t* yc = rows.y;
      const T* tc = rows.t;
      const int64_t ld_t = rows.ld_t;
      const View<T> X{const_cast<T*>(xc), d0};

      // Views of layer l for point q (acts, deltas) and of the current direction.
      auto act = [&](int l, int64_t q) {
        if (pc)  // the point's rows r0.. in the cache
          return l == 0 ? View<T>{pc->A1.data() + r0 * h1, h1}
                        : View<T>{pc->acts[l].data() + r0 * s.sizes[l + 1], s.sizes[l + 1]};
        return l == 0 ? View<T>{w.A1.data() + q * h1, wt}
                      : View<T>{w.acts[l].data() + q * C * s.sizes[l + 1], s.sizes[l + 1]};
      };
      auto del = [&](int l, int64_t q) {
        if (pc)
          return l == 0 ? View<T>{pc->D1.data() + r0 * h1, h1}
                        : View<T>{pc->delta[l].data() + r0 * s.sizes[l + 1], s.sizes[l + 1]};
        return l == 0 ? View<T>{w.D1.data() + q * h1, wt}
                      : View<T>{w.delta[l].data() + q * C * s.sizes[l + 1], s.sizes[l + 1]};
      };
      auto rview = [&](std::vector<T>& first, std::vector<std::vector<T>>& later, int l,
                       int64_t p) {
        return l == 0 ? View<T>{first.data() + p * h1, wp}
                      : View<T>{later[l].data(), s.sizes[l + 1]};
      };
      auto weights = [&](const T* vec, int l) {
        return View<T>{const_cast<T*>(vec + woff[l]), s.sizes[l]};
      };

      // Forward, loss and plain backward once per point.
      if (do_point) {
        const View<T> A1 = act(0, 0);
        first_product(r0, nc, X, w1t.data(), w1tt.data(), wt, A1);
        if (s.bias) blocks::add_bias(A1.p, A1.ld, nc, wt, b1t.data());
        blocks::activate(s.activation(0), A1.p, A1.ld, nc, wt);
        for (int64_t q = 0; q < Pt; ++q) {
          const T* th = theta + q * D;
          for (int l = 1; l < L; ++l) {
            const View<T> z = act(l, q);
            gemm(blas::N, blas::T, nc, s.sizes[l + 1], s.sizes[l], act(l - 1, q), weights(th, l),
                 T(0), z);
            if (s.bias) blocks::add_bias(z.p, z.ld, nc, s.sizes[l + 1], th + boff[l]);
            blocks::activate(s.activation(l), z.p, z.ld, nc, s.sizes[l + 1]);
          }
          const View<T> o = act(L - 1, q), d = del(L - 1, q);
          double total = 0.0;
          for (int i = 0; i < nc; ++i) {
            bool ok = false;
            total += math::row_loss(s.loss, s.output, o.row(i), dout, yc ? yc[i] : 0,
                                    tc ? tc + int64_t(i) * ld_t : nullptr, d.row(i), scale,
                                    static_cast<T*>(nullptr), &ok);
          }
          w.loss[q] += total;
          T* g = want_grad ? w.g.data() + q * R1 : nullptr;
          for (int l = L - 1; l >= 1; --l) {
            const int in = s.sizes[l], out = s.sizes[l + 1];
            if (g) {
              gemm(blas::T, blas::N, out, in, nc, del(l, q), act(l - 1, q), T(1),
                   View<T>{g + woff[l] - W1, in});
              if (s.bias)
                blocks::add_column_sums(del(l, q).p, del(l, q).ld, nc, out, g + boff[l] - W1);
            }
            gemm(blas::N, blas::N, nc, in, out, del(l, q), weights(th, l), T(0), del(l - 1, q));
            blocks::multiply_derivative(s.activation(l - 1), act(l - 1, q).p, act(l - 1, q).ld,
                                        del(l - 1, q).p, del(l - 1, q).ld, nc, in);
          }
          if (g && s.bias)
            blocks::add_column_sums(del(0, q).p, del(0, q).ld, nc, h1, g + boff[0] - W1);
        }
        if (want_grad) first_gradient(r0, nc, X, del(0, 0), wt, c == c_begin, w.gw1.data());
      }
      if (!do_r) continue;

      // The directional derivatives, one direction at a time after the shared product.
      first_product(r0, nc, X, v1.data(), v1tt.data(), wp, View<T>{w.RZ1.data(), wp});
      if (s.bias) blocks::add_bias(w.RZ1.data(), wp, nc, wp, vb1.data());
      for (int64_t p = 0; p < P; ++p) {
        const int64_t q = Pt == 1 ? 0 : p;
        const T* th = theta + q * D;
        const T* vp = v + p * D;
        r_activation(s.activation(0), act(0, q), rview(w.RZ1, w.rz, 0, p),
                     rview(w.RA1, w.ra, 0, p), static_cast<const View<T>*>(nullptr), nc, h1);
        for (int l = 1; l < L; ++l) {
          const int in = s.sizes[l], out = s.sizes[l + 1];
          const View<T> rz = rview(w.RZ1, w.rz, l, p);
          gemm(blas::N, blas::T, nc, out, in, rview(w.RA1, w.ra, l - 1, p), weights(th, l), T(0),
               rz);
          gemm(blas::N, blas::T, nc, out, in, act(l - 1, q), weights(vp, l), T(1), rz);
          if (s.bias) blocks::add_bias(rz.p, rz.ld, nc, out, vp + boff[l]);
          r_activation(s.activation(l), act(l, q), rz, rview(w.RA1, w.ra, l, p),
                       static_cast<const View<T>*>(nullptr), nc, out);
        }
        {
          const View<T> o = act(L - 1, q), d = del(L - 1, q);
          const View<T> rz = rview(w.RZ1, w.rz, L - 1, p), rd = rview(w.RD1, w.rd, L - 1, p);
          for (int i = 0; i < nc; ++i)
            math::row_loss_rop(s.loss, s.output, o.row(i), dout, d.row(i), rz.row(i), rd.row(i),
                               scale);
        }
        T* h = w.hv.data() + p * R1;
        for (int l = L - 1; l >= 1; --l) {
          const int in = s.sizes[l], out = s.sizes[l + 1];
          const View<T> rd = rview(w.RD1, w.rd, l, p), d = del(l, q);
          const View<T> hw{h + woff[l] - W1, in};
          gemm(blas::T, blas::N, out, in, nc, rd, act(l - 1, q), T(1), hw);
          gemm(blas::T, blas::N, out, in, nc, d, rview(w.RA1, w.ra, l - 1, p), T(1), hw);
          if (s.bias) blocks::add_column_sums(rd.p, rd.ld, nc, out, h + boff[l] - W1);
          const View<T> rprev = rview(w.RD1, w.rd, l - 1, p);
          gemm(blas::N, blas::N, nc, in, out, rd, weights(th, l), T(0), rprev);
          gemm(blas::N, blas::N, nc, in, out, d, weights(vp, l), T(1), rprev);
          const View<T> dprev = del(l - 1, q);
          r_activation(s.activation(l - 1), act(l - 1, q), rview(w.RZ1, w.rz, l - 1, p), rprev,
                       &dprev, nc, in);
        }
        if (s.bias)
          blocks::add_column_sums(w.RD1.data() + p * h1, wp, nc, h1, h + boff[0] - W1);
      }
      first_gradient(r0, nc, X, View<T>{w.RD1.data(), wp}, wp, c == c_begin, w.hw1.data());
    }
  };
  {
    if (pc && !hit) {  // the point's passes into the cache, in chunks of its own
      const blocks::Split sp0 = split(2);
      const int64_t C0 = sp0.C;
      const int nt0 = std::min(sp0.nt, nt);
      chunks::on_threads(sp0.nchunks, nt0, [&](int t, int64_t c_begin, int64_t c_end) {
        run(c_begin, c_end, work[t], C0, true, false);
      });
      pc->loss = 0.0;
      for (int t = 0; t < nt0; ++t) {
        pc->loss += work[t].loss[0];
        work[t].loss[0] = 0.0;
      }
      pc->theta.assign(theta, theta + D);
      pc->threads = threads;
      pc->chunk = options_.chunk;
      pc->valid = true;
    }
    chunks::on_threads(nchunks, nt, [&](int t, int64_t c_begin, int64_t c_end) {
      run(c_begin, c_end, work[t], C, !pc, true);
    });
  }
  if (sparse_in) {  // each thread's first-layer gradients back to (width, d0)
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; ++t) {
      denormals::Flush flush;  // this thread, for this work
      const std::vector<T> hw1 = work[t].hw1;
      sparse::transpose_back(hw1.data(), wp, d0, work[t].hw1.data());
      if (want_grad) {
        const std::vector<T> gw1 = work[t].gw1;
        sparse::transpose_back(gw1.data(), wt, d0, work[t].gw1.data());
      }
    }
  }
  // Sums over the threads in a fixed order.
  auto reduce = [&](int64_t rows, T* out, std::vector<T> HvpWork<T>::*first,
                    std::vector<T> HvpWork<T>::*rest) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < rows; ++p) {
      denormals::Flush flush;  // this thread, for this work
      T* o = out + p * D;
      chunks::sum_in_order(nt, W1, [&](int t) { return (work[t].*first).data() + p * W1; }, o);
      chunks::sum_in_order(nt, R1, [&](int t) { return (work[t].*rest).data() + p * R1; },
                           o + W1);
    }
  };
  reduce(P, hv_out, &HvpWork<T>::hw1, &HvpWork<T>::hv);
  if (want_grad) reduce(Pt, grad_out, &HvpWork<T>::gw1, &HvpWork<T>::g);
  if (loss_out) {
    const double inv = math::mean_factor(s, N);
    for (int64_t q = 0; q < Pt; ++q) {
      double x = 0.0;
      for (int t = 0; t < nt; ++t) x += work[t].loss[q];
      loss_out[q] = T((pc ? pc->loss : x) * inv);
    }
  }
}

template void Landscape<float>::hessian_vector(const float*, int64_t, const float*, int64_t,
                                               float*, float*, float*, const int64_t*,
                                               int64_t) const;
template void Landscape<double>::hessian_vector(const double*, int64_t, const double*, int64_t,
                                                double*, double*, double*, const int64_t*,
                                                int64_t) const;

}  // namespace losstopo
