#include "losstopo/path.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "blas.hpp"

namespace losstopo {

namespace {
constexpr double kPi = 3.141592653589793238462643383279502884;

template <typename T>
void sine_rows(const double* t, int64_t nt, int K, T* S) {
  for (int64_t m = 0; m < nt; ++m)
    for (int n = 0; n < K; ++n) S[m * K + n] = T(std::sin((n + 1) * kPi * t[m]));
}
}  // namespace

template <typename T>
PathBatch<T>::PathBatch(BatchFunction<T> energy, int64_t dim, int64_t R, const T* A, const T* B,
                        PathParams params)
    : energy_(std::move(energy)), D_(dim), R_(R), K_(params.n_modes), M_(params.n_points),
      p_(params) {
  if (dim < 1) throw std::invalid_argument("a, b: empty parameter vectors");
  if (R < 1) throw std::invalid_argument("pairs: need at least one pair");
  if (K_ < 0) throw std::invalid_argument("n_modes: must be non-negative");
  if (M_ < 3) throw std::invalid_argument("n_points: need at least 3 points");
  if (!(p_.lam >= 0.0) || !std::isfinite(p_.lam))
    throw std::invalid_argument("lam: must be a finite non-negative number");
  if (!(p_.temperature > 0.0)) throw std::invalid_argument("temperature: must be positive");
  if (p_.steps < 0) throw std::invalid_argument("steps: must be non-negative");
  if (!(p_.lr > 0.0)) throw std::invalid_argument("lr: must be positive");
  A_.assign(A, A + R * dim);
  B_.assign(B, B + R * dim);
  t_.resize(M_);
  for (int m = 0; m < M_; ++m) t_[m] = double(m) / double(M_ - 1);
  S_.resize(size_t(M_) * std::max(K_, 1));
  sine_rows(t_.data(), M_, K_, S_.data());
  coeffs.assign(size_t(R) * K_ * dim, T(0));
  best_coeffs = coeffs;
  best_sum.assign(R, std::numeric_limits<double>::infinity());
  history.assign(size_t(R) * (p_.steps + 1), std::numeric_limits<double>::quiet_NaN());
  // Energies of the endpoints (fixed): one call for all 2R of them.
  std::vector<T> ends(size_t(2) * R * dim), e(2 * R);
  std::copy(A_.begin(), A_.end(), ends.begin());
  std::copy(B_.begin(), B_.end(), ends.begin() + R * dim);
  energy_(ends.data(), 2 * R, e.data(), nullptr);
  end_energy.resize(2 * R);
  for (int64_t r = 0; r < R; ++r) {
    end_energy[2 * r] = double(e[r]);
    end_energy[2 * r + 1] = double(e[R + r]);
  }
}

template <typename T>
void PathBatch<T>::points(const T* C, const double* t, int64_t nt, T* W,
                          const std::vector<int64_t>& rows) const {
  const int64_t n = rows.empty() ? R_ : int64_t(rows.size());
  blas::SingleThreaded single_threaded_blas;  // small products; keep BLAS threads asleep
  std::vector<T> S(size_t(nt) * std::max(K_, 1));
  sine_rows(t, nt, K_, S.data());
  for (int64_t j = 0; j < n; ++j) {
    const int64_t r = rows.empty() ? j : rows[j];
    const T* a = &A_[r * D_];
    const T* b = &B_[r * D_];
    T* w = W + size_t(j) * nt * D_;
    for (int64_t m = 0; m < nt; ++m) {
      const T tm = T(t[m]), sm = T(1.0 - t[m]);
      T* row = w + m * D_;
      for (int64_t i = 0; i < D_; ++i) row[i] = sm * a[i] + tm * b[i];
    }
    if (K_ > 0)
      blas::gemm(blas::N, blas::N, int(nt), int(D_), K_, T(1), S.data(), K_,
                 C + size_t(j) * K_ * D_, int(D_), T(1), w, int(D_));
  }
}

template <typename T>
void PathBatch<T>::objective(const T* C, const std::vector<int64_t>& rows_in, T* value, T* grad,
                             T* energies) {
  std::vector<int64_t> rows = rows_in;
  if (rows.empty())
    for (int64_t r = 0; r < R_; ++r) rows.push_back(r);
  const int64_t n = int64_t(rows.size()), Mi = M_ - 2;
  const size_t KD = size_t(K_) * D_;
  W_.resize(size_t(n) * Mi * D_);
  points(C, t_.data() + 1, Mi, W_.data(), rows);
  std::vector<T> E(size_t(n) * Mi);
  const bool sum = p_.objective == PathObjective::Sum;
  // The energies and, for the sum objective, the data term's gradient: natively as
  // combinations of the endpoints and coefficients when possible.
  std::vector<T>& basis = basis_;
  std::vector<T> coef;
  std::vector<int32_t> index;
  const int Q = K_ + 2;
  if (comb_ && K_ > 0) {
    basis.resize(size_t(Q) * D_);
    coef.resize(size_t(Mi) * Q);
    index.resize(size_t(Mi) * Q);
    for (int64_t m = 0; m < Mi; ++m) {
      const double t = t_[m + 1];
      coef[m * Q] = T(1.0 - t);
      coef[m * Q + 1] = T(t);
      for (int k = 0; k < K_; ++k) coef[m * Q + 2 + k] = S_[(m + 1) * K_ + k];
      for (int q = 0; q < Q; ++q) index[m * Q + q] = q;
    }
  }
  auto set_basis = [&](int64_t j) {
    const int64_t r = rows[j];
    std::copy(&A_[r * D_], &A_[(r + 1) * D_], basis.begin());
    std::copy(&B_[r * D_], &B_[(r + 1) * D_], basis.begin() + D_);
    std::copy(C + j * KD, C + (j + 1) * KD, basis.begin() + 2 * D_);
  };
  const bool native = comb_ && K_ > 0;
  if (native) {
    for (int64_t j = 0; j < n; ++j) {
      set_basis(j);
      const bool direct = grad && sum;  // the weights are known before the pass
      comb_(&W_[size_t(j) * Mi * D_], Mi, basis.data(), Q, index.data(), coef.data(), Q,
            &E[j * Mi], direct ? &S_[K_] : nullptr, direct ? K_ : 0,
            direct ? grad + j * KD : nullptr);
    }
  } else {
    if (grad) G_.resize(size_t(n) * Mi * D_);
    energy_(W_.data(), n * Mi, E.data(), grad ? G_.data() : nullptr);
  }
  energy_points += n * Mi;
  const double lam = p_.lam, tau = p_.temperature;
  // Scratch for the smoothness gradient: the generic gradients' buffer when free.
  if (grad && native) G_.resize(size_t(Mi) * D_);
  std::vector<T> gs_own(grad && !native ? size_t(Mi) * D_ : 0), proj(grad ? size_t(Mi) * K_ : 0);
  T* gs = native ? G_.data() : gs_own.data();
  for (int64_t j = 0; j < n; ++j) {
    const int64_t r = rows[j];
    const T* a = &A_[r * D_];
    const T* b = &B_[r * D_];
    const T* w = &W_[size_t(j) * Mi * D_];
    // Energies at all M points, endpoints included.
    std::vector<double> e(M_);
    e[0] = end_energy[2 * r];
    e[M_ - 1] = end_energy[2 * r + 1];
    for (int64_t m = 0; m < Mi; ++m) e[m + 1] = double(E[j * Mi + m]);
    if (energies)
      for (int m = 0; m < M_; ++m) energies[j * M_ + m] = T(e[m]);
    // Data term and the weight of each point's gradient.
    std::vector<double> wgt(M_, 1.0);
    double data = 0.0;
    if (sum) {
      for (double v : e) data += v;
    } else if (p_.objective == PathObjective::SumSquares) {
      for (int m = 0; m < M_; ++m) {
        data += e[m] * e[m];
        wgt[m] = 2.0 * e[m];
      }
    } else {
      const double mx = *std::max_element(e.begin(), e.end());
      double sw = 0.0;
      for (int m = 0; m < M_; ++m) sw += (wgt[m] = std::exp((e[m] - mx) / tau));
      data = M_ * (mx + tau * std::log(sw / M_));
      for (double& v : wgt) v *= M_ / sw;
    }
    // Smoothness: lam * sum of squared segment lengths.
    double smooth = 0.0;
    for (int64_t m = 0; m <= Mi; ++m) {
      const T* p = m == 0 ? a : w + (m - 1) * D_;
      const T* q = m == Mi ? b : w + m * D_;
      double s2 = 0.0;
      for (int64_t i = 0; i < D_; ++i) {
        const double d = double(q[i]) - double(p[i]);
        s2 += d * d;
      }
      smooth += s2;
    }
    value[j] = T(data + lam * smooth);
    if (!grad || K_ == 0) continue;
    T* gj = grad + j * KD;
    // Data term: weight_m g_m projected onto the sine basis.
    if (native && !sum) {  // a second pass with the weights now known
      for (int64_t m = 0; m < Mi; ++m)
        for (int k = 0; k < K_; ++k) proj[m * K_ + k] = T(wgt[m + 1]) * S_[(m + 1) * K_ + k];
      set_basis(j);
      std::vector<T> e2(Mi);
      comb_(w, Mi, basis.data(), Q, index.data(), coef.data(), Q, e2.data(), proj.data(), K_,
            gj);
    } else if (!native) {
      T* g = &G_[size_t(j) * Mi * D_];
      for (int64_t m = 0; m < Mi; ++m) {
        const T wm = T(wgt[m + 1]);
        for (int64_t i = 0; i < D_; ++i) g[m * D_ + i] *= wm;
      }
      blas::SingleThreaded single_threaded_blas;
      blas::gemm(blas::T, blas::N, K_, int(D_), int(Mi), T(1), &S_[K_], K_, g, int(D_), T(0),
                 gj, int(D_));
    }
    // Smoothness: 2 lam (2 w_m - w_m-1 - w_m+1) projected the same way, added.
    const T l2 = T(2 * lam);
    for (int64_t m = 0; m < Mi; ++m) {
      const T* prev = m == 0 ? a : w + (m - 1) * D_;
      const T* next = m == Mi - 1 ? b : w + (m + 1) * D_;
      const T* cur = w + m * D_;
      T* gm = gs + m * D_;
      for (int64_t i = 0; i < D_; ++i) gm[i] = l2 * (T(2) * cur[i] - prev[i] - next[i]);
    }
    blas::SingleThreaded single_threaded_blas;
    blas::gemm(blas::T, blas::N, K_, int(D_), int(Mi), T(1), &S_[K_], K_, gs, int(D_), T(1), gj,
               int(D_));
  }
}

template <typename T>
void PathBatch<T>::track(const std::vector<int64_t>& rows, const T* C, const T* energies,
                         const T* value, int step) {
  const size_t KD = size_t(K_) * D_;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t r = rows[j];
    double sum = 0.0;
    for (int m = 0; m < M_; ++m) sum += double(energies[j * M_ + m]);
    if (std::isfinite(sum) && sum < best_sum[r]) {
      best_sum[r] = sum;
      std::copy(C + j * KD, C + (j + 1) * KD, &best_coeffs[r * KD]);
    }
    if (step >= 0 && step <= p_.steps) history[r * (p_.steps + 1) + step] = double(value[j]);
  }
}

template <typename T>
void PathBatch<T>::optimize(const std::function<bool(int)>& on_step) {
  const size_t KD = size_t(K_) * D_;
  std::vector<int64_t> all;
  for (int64_t r = 0; r < R_; ++r) all.push_back(r);
  std::vector<T> value(R_), E(size_t(R_) * M_);
  if (p_.optimizer == PathOptimizer::Adam || K_ == 0) {
    std::vector<T> grad(R_ * KD), m1(R_ * KD, T(0)), m2(R_ * KD, T(0));
    const T b1 = T(p_.beta1), b2 = T(p_.beta2), eps = T(p_.eps), lr = T(p_.lr);
    int step = steps_done;
    for (; step < p_.steps && K_ > 0; ++step) {
      objective(coeffs.data(), all, value.data(), grad.data(), E.data());
      track(all, coeffs.data(), E.data(), value.data(), step);
      const T c1 = T(1) - T(std::pow(p_.beta1, step + 1));
      const T c2 = T(1) - T(std::pow(p_.beta2, step + 1));
      for (size_t i = 0; i < R_ * KD; ++i) {
        const T gi = std::isfinite(grad[i]) ? grad[i] : T(0);
        m1[i] = b1 * m1[i] + (T(1) - b1) * gi;
        m2[i] = b2 * m2[i] + (T(1) - b2) * gi * gi;
        coeffs[i] -= lr * (m1[i] / c1) / (std::sqrt(m2[i] / c2) + eps);
      }
      steps_done = step + 1;
      if (on_step && !on_step(step + 1)) break;
    }
    objective(coeffs.data(), all, value.data(), nullptr, E.data());
    track(all, coeffs.data(), E.data(), value.data(), steps_done);
    return;
  }
  // L-BFGS: one problem per path (each still one batched call over its points).
  LBFGSParams lp = p_.lbfgs;
  lp.max_iter = p_.steps;
  lp.gtol = 0.0;
  for (int64_t r = 0; r < R_; ++r) {
    std::vector<int64_t> one{r};
    std::vector<T> e(M_);
    T v;
    BatchLBFGS<T> opt(
        [&](const T* X, int64_t n, T* f, T* g) {
          for (int64_t j = 0; j < n; ++j)
            objective(X + j * KD, one, f + j, g ? g + j * KD : nullptr, e.data());
        },
        int64_t(KD), lp);
    // The best path is chosen among the iterates (not the line-search trials, which
    // may stray far from a smooth path).
    auto track_iterate = [&](int it) {
      objective(opt.problem(0).x.data(), one, &v, nullptr, e.data());
      track(one, opt.problem(0).x.data(), e.data(), &v, it);
    };
    opt.start(&coeffs[r * KD], 1);
    track_iterate(0);
    for (int it = 1; it <= p_.steps; ++it) {
      if (opt.iterate() == 0 && opt.problem(0).nit < it) break;
      track_iterate(it);
      if (on_step && !on_step(it)) break;
    }
    std::copy(opt.problem(0).x.begin(), opt.problem(0).x.end(), &coeffs[r * KD]);
  }
  steps_done = p_.steps;
}

template class PathBatch<float>;
template class PathBatch<double>;

}  // namespace losstopo
