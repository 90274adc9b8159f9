#include "losstopo/path.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "blas.hpp"
#include "losstopo/sgd.hpp"  // permutation

namespace losstopo {

namespace {
constexpr double kPi = 3.141592653589793238462643383279502884;

// S (nt, K): the curve family's basis functions at the parameters t.
template <typename T>
void basis_rows(PathCurve curve, const double* t, int64_t nt, int K, T* S) {
  for (int64_t m = 0; m < nt; ++m)
    for (int n = 0; n < K; ++n) S[m * K + n] = T(path_basis(curve, K, n + 1, t[m]));
}
}  // namespace

double path_basis(PathCurve curve, int K, int k, double t) {
  switch (curve) {
    case PathCurve::Fourier:
      return std::sin(k * kPi * t);
    case PathCurve::Bezier: {
      const int n = K + 1;  // degree
      double binom = 1.0;   // C(n, k)
      for (int i = 1; i <= k; ++i) binom = binom * (n - k + i) / i;
      return binom * std::pow(t, k) * std::pow(1.0 - t, n - k);
    }
    case PathCurve::Polychain: {
      const double h = 1.0 / (K + 1), tk = k * h;
      return std::max(0.0, 1.0 - std::abs(t - tk) / h);
    }
  }
  return 0.0;
}

template <typename T>
PathBatch<T>::PathBatch(BatchFunction<T> energy, int64_t dim, int64_t R, const T* A, const T* B,
                        PathParams params)
    : energy_(std::move(energy)), D_(dim), R_(R), K_(params.n_modes), M_(params.n_points),
      p_(params) {
  if (dim < 1) throw std::invalid_argument("a, b: empty parameter vectors");
  if (R < 1) throw std::invalid_argument("pairs: need at least one pair");
  p_.validate();
  A_.assign(A, A + R * dim);
  B_.assign(B, B + R * dim);
  init();
}

template <typename T>
PathBatch<T>::PathBatch(const Objective<T>& objective, int64_t R, const T* A, const T* B,
                        PathParams params)
    : PathBatch(
          [&objective](const T* X, int64_t n, T* f, T* g) {
            objective.evaluate(X, n, f, g, nullptr, nullptr, 0);
          },
          objective.num_params(), R, A, B, params) {
  obj_ = &objective;
}

template <typename T>
void PathBatch<T>::init() {
  const int64_t R = R_, dim = D_;
  t_.resize(M_);
  for (int m = 0; m < M_; ++m) t_[m] = double(m) / double(M_ - 1);
  S_.resize(size_t(M_) * std::max(K_, 1));
  basis_rows(p_.curve, t_.data(), M_, K_, S_.data());
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
  tau_.assign(R, p_.temperature);
  if (p_.objective == PathObjective::Minimax && p_.auto_temperature) {
    // 1% of each straight line's barrier above its higher endpoint.
    const int64_t Mi = M_ - 2;
    std::vector<T> W(size_t(Mi) * dim), E(Mi);
    for (int64_t r = 0; r < R; ++r) {
      const T* a = &A_[r * dim];
      const T* b = &B_[r * dim];
      for (int64_t m = 0; m < Mi; ++m) {
        const T tm = T(t_[m + 1]), sm = T(1.0 - t_[m + 1]);
        for (int64_t i = 0; i < dim; ++i) W[m * dim + i] = sm * a[i] + tm * b[i];
      }
      energy_(W.data(), Mi, E.data(), nullptr);
      double top = std::max(end_energy[2 * r], end_energy[2 * r + 1]);
      const double ends_max = top;
      for (T v : E) top = std::max(top, double(v));
      tau_[r] = std::max(0.01 * (top - ends_max), 1e-8);
    }
  }
}

template <typename T>
void PathBatch<T>::points(const T* C, const double* t, int64_t nt, T* W,
                          const std::vector<int64_t>& rows) const {
  const int64_t n = rows.empty() ? R_ : int64_t(rows.size());
  blas::SingleThreaded single_threaded_blas;  // small products; keep BLAS threads asleep
  std::vector<T> S(size_t(nt) * std::max(K_, 1));
  basis_rows(p_.curve, t, nt, K_, S.data());
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
std::vector<int64_t> PathBatch<T>::step_samples(int step) const {
  if (!obj_) throw std::invalid_argument("batch_size: stochastic steps need a landscape's samples");
  const int64_t N = obj_->num_samples(), B = p_.batch_size;
  if (B < 1 || B > N)
    throw std::invalid_argument("batch_size: must lie in [1, " + std::to_string(N) +
                                "] (the landscape's samples), got " + std::to_string(B));
  // Stream 1 keeps the draws apart from the SGD minibatch orders (stream 0).
  std::vector<int64_t> order(N);
  permutation(p_.batch_seed, 1, uint64_t(step), N, order.data());
  order.resize(B);
  std::sort(order.begin(), order.end());  // in data order: contiguous reads
  return order;
}

template <typename T>
void PathBatch<T>::objective(const T* C, const std::vector<int64_t>& rows_in, T* value, T* grad,
                             T* energies, const int64_t* samples, int64_t n_samples) {
  if (samples && !obj_)
    throw std::invalid_argument("samples: a batched function has no samples to choose");
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
  const bool native = uses_combinations() && K_ > 0;
  if (native) {
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
  if (native) {
    for (int64_t j = 0; j < n; ++j) {
      set_basis(j);
      const bool direct = grad && sum;  // the weights are known before the pass
      obj_->evaluate_combination(&W_[size_t(j) * Mi * D_], Mi, basis.data(), Q, index.data(),
                                 coef.data(), Q, &E[j * Mi], direct ? &S_[K_] : nullptr,
                                 direct ? K_ : 0, direct ? grad + j * KD : nullptr, samples,
                                 n_samples);
    }
  } else {
    if (grad) G_.resize(size_t(n) * Mi * D_);
    if (samples)
      obj_->evaluate(W_.data(), n * Mi, E.data(), grad ? G_.data() : nullptr, nullptr, samples,
                     n_samples);
    else
      energy_(W_.data(), n * Mi, E.data(), grad ? G_.data() : nullptr);
  }
  energy_points += n * Mi;
  // The endpoints' energies: fixed on all samples, or on this step's samples.
  std::vector<double> ends(2 * n);
  if (samples) {
    std::vector<T> X(size_t(2) * n * D_), e(2 * n);
    for (int64_t j = 0; j < n; ++j) {
      std::copy(&A_[rows[j] * D_], &A_[(rows[j] + 1) * D_], &X[size_t(2 * j) * D_]);
      std::copy(&B_[rows[j] * D_], &B_[(rows[j] + 1) * D_], &X[size_t(2 * j + 1) * D_]);
    }
    obj_->evaluate(X.data(), 2 * n, e.data(), nullptr, nullptr, samples, n_samples);
    std::copy(e.begin(), e.end(), ends.begin());
    energy_points += 2 * n;
  } else {
    for (int64_t j = 0; j < n; ++j) {
      ends[2 * j] = end_energy[2 * rows[j]];
      ends[2 * j + 1] = end_energy[2 * rows[j] + 1];
    }
  }
  const double lam = p_.lam;
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
    e[0] = ends[2 * j];
    e[M_ - 1] = ends[2 * j + 1];
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
      const double tau = tau_[r];
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
      obj_->evaluate_combination(w, Mi, basis.data(), Q, index.data(), coef.data(), Q, e2.data(),
                                 proj.data(), K_, gj, samples, n_samples);
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
                         const T* value, int step, bool last) {
  const size_t KD = size_t(K_) * D_;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t r = rows[j];
    double sum = 0.0;
    for (int m = 0; m < M_; ++m) sum += double(energies[j * M_ + m]);
    // Stochastic steps keep the last iterate (measured on all samples).
    const bool stochastic = p_.batch_size > 0;
    if (stochastic ? last : std::isfinite(sum) && sum < best_sum[r]) {
      best_sum[r] = sum;
      std::copy(C + j * KD, C + (j + 1) * KD, &best_coeffs[r * KD]);
    }
    if (step >= 0 && step <= p_.steps) history[r * (p_.steps + 1) + step] = double(value[j]);
  }
}

namespace {

// The endpoints are basis vectors of every step's combinations: held by the objective
// (Objective::hold_basis) while the steps run, released on every way out.
template <typename T>
class EndpointHold {
 public:
  EndpointHold(const Objective<T>* obj, const std::vector<T>& A, const std::vector<T>& B)
      : obj_(obj) {
    if (!obj_) return;
    V_ = A;
    V_.insert(V_.end(), B.begin(), B.end());
    Q_ = int64_t(V_.size()) / obj_->num_params();
    obj_->hold_basis(V_.data(), Q_);
  }
  ~EndpointHold() {
    if (obj_) obj_->release_basis(V_.data(), Q_);
  }
  EndpointHold(const EndpointHold&) = delete;
  EndpointHold& operator=(const EndpointHold&) = delete;

 private:
  const Objective<T>* obj_;
  std::vector<T> V_;
  int64_t Q_ = 0;
};

}  // namespace

template <typename T>
void PathBatch<T>::optimize(const std::function<bool(int)>& on_step) {
  const size_t KD = size_t(K_) * D_;
  const EndpointHold<T> hold(uses_combinations() && K_ > 0 && steps_done < p_.steps ? obj_
                                                                                     : nullptr,
                             A_, B_);
  std::vector<int64_t> all;
  for (int64_t r = 0; r < R_; ++r) all.push_back(r);
  std::vector<T> value(R_), E(size_t(R_) * M_);
  if (p_.optimizer == PathOptimizer::Adam || K_ == 0) {
    std::vector<T> grad(R_ * KD), m1(R_ * KD, T(0)), m2(R_ * KD, T(0));
    const T b1 = T(p_.beta1), b2 = T(p_.beta2), eps = T(p_.eps), lr = T(p_.lr);
    int step = steps_done;
    for (; step < p_.steps && K_ > 0; ++step) {
      const std::vector<int64_t> batch =
          p_.batch_size > 0 ? step_samples(step) : std::vector<int64_t>();
      objective(coeffs.data(), all, value.data(), grad.data(), E.data(),
                batch.empty() ? nullptr : batch.data(), int64_t(batch.size()));
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
    track(all, coeffs.data(), E.data(), value.data(), steps_done, true);
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

template <typename T>
void PathBatch<T>::curve_energies(int64_t r, const T* Cr, const std::vector<double>& t,
                                  const std::vector<uint8_t>& line,
                                  std::vector<double>& E) const {
  const int64_t P = int64_t(t.size()), Q = K_ + 2;
  std::vector<T> coef(size_t(P) * Q), W(size_t(P) * D_), e(P);
  for (int64_t p = 0; p < P; ++p) {
    T* c = &coef[p * Q];
    c[0] = T(1.0 - t[p]);
    c[1] = T(t[p]);
    for (int k = 0; k < K_; ++k)
      c[2 + k] = line[p] ? T(0) : T(path_basis(p_.curve, K_, k + 1, t[p]));
  }
  const T* a = &A_[r * D_];
  const T* b = &B_[r * D_];
  {
    // The points, as points() forms them: (1 - t) a + t b, then the sine terms.
    blas::SingleThreaded single_threaded_blas;
    for (int64_t p = 0; p < P; ++p) {
      const T sm = coef[p * Q], tm = coef[p * Q + 1];
      T* w = &W[p * D_];
      for (int64_t i = 0; i < D_; ++i) w[i] = sm * a[i] + tm * b[i];
    }
    if (K_ > 0)
      blas::gemm(blas::N, blas::N, int(P), int(D_), K_, T(1), &coef[2], int(Q), Cr, int(D_),
                 T(1), W.data(), int(D_));
  }
  if (uses_combinations()) {
    std::vector<T> basis(size_t(Q) * D_);
    std::copy(a, a + D_, basis.begin());
    std::copy(b, b + D_, basis.begin() + D_);
    if (K_ > 0) std::copy(Cr, Cr + size_t(K_) * D_, basis.begin() + 2 * D_);
    std::vector<int32_t> index(size_t(P) * Q);
    for (int64_t p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q) index[p * Q + q] = q;
    obj_->evaluate_combination(W.data(), P, basis.data(), Q, index.data(), coef.data(), int(Q),
                               e.data());
  } else {
    energy_(W.data(), P, e.data(), nullptr);
  }
  E.assign(e.begin(), e.end());
}

template <typename T>
PathMeasures PathBatch<T>::measure(const T* C, const std::vector<int64_t>& rows_in, bool refine,
                                   int factor, int rounds, int per_round) const {
  if (factor < 1 || rounds < 0 || per_round < 2)
    throw std::invalid_argument("measure: need factor >= 1, rounds >= 0, per_round >= 2");
  std::vector<int64_t> rows = rows_in;
  if (rows.empty())
    for (int64_t r = 0; r < R_; ++r) rows.push_back(r);
  for (int64_t r : rows)
    if (r < 0 || r >= R_) throw std::invalid_argument("rows: out of range");
  const int64_t n = int64_t(rows.size());
  const size_t KD = size_t(K_) * D_;
  const bool cls = obj_ && obj_->classifier();
  PathMeasures out;
  out.energies.resize(size_t(n) * M_);
  out.straight.resize(size_t(n) * M_);
  if (cls) out.errors.resize(size_t(n) * M_);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.t_max.assign(n, nan);
  out.e_max.assign(n, nan);
  out.straight_t_max.assign(n, nan);
  out.straight_e_max.assign(n, nan);
  const int64_t nfine = refine ? int64_t(factor) * (M_ - 1) + 1 : 0;
  std::vector<T> W(size_t(M_) * D_), E(M_), acc(M_);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t r = rows[j];
    const T* Cr = C + j * KD;
    // 1. The path on its grid, in full (with accuracies for a classifier).
    points(Cr, t_.data(), M_, W.data(), {r});
    if (obj_) obj_->evaluate(W.data(), M_, E.data(), nullptr, cls ? acc.data() : nullptr,
                             nullptr, 0);
    else energy_(W.data(), M_, E.data(), nullptr);
    ++out.calls;
    for (int m = 0; m < M_; ++m) {
      out.energies[j * M_ + m] = double(E[m]);
      if (cls) out.errors[j * M_ + m] = 1.0 - double(acc[m]);
    }
    // 2. The straight line on the grid, and both curves on the fine grid.
    std::vector<double> t(t_.begin(), t_.end());
    std::vector<uint8_t> line(M_, 1);
    for (int64_t i = 0; i < nfine; ++i) {
      const double ti = double(i) / double(nfine - 1);
      for (uint8_t l : {uint8_t(0), uint8_t(1)}) {
        t.push_back(ti);
        line.push_back(l);
      }
    }
    std::vector<double> e;
    curve_energies(r, Cr, t, line, e);
    ++out.calls;
    for (int m = 0; m < M_; ++m) out.straight[j * M_ + m] = e[m];
    if (!refine) continue;
    // The highest fine-grid point of each curve brackets its maximum.
    double best_t[2], best_e[2], half[2];
    for (int c = 0; c < 2; ++c) {
      int64_t k = 0;
      for (int64_t i = 1; i < nfine; ++i)
        if (e[M_ + 2 * i + c] > e[M_ + 2 * k + c]) k = i;
      best_t[c] = double(k) / double(nfine - 1);
      best_e[c] = e[M_ + 2 * k + c];
      half[c] = 1.0 / double(nfine - 1);
    }
    // 3. Rounds: per_round points spread over [best - half, best + half] (within
    // [0, 1]), then the bracket shrinks around the best point.
    for (int round = 0; round < rounds; ++round) {
      t.clear();
      line.clear();
      for (int c = 0; c < 2; ++c) {
        const double lo = std::max(0.0, best_t[c] - half[c]);
        const double hi = std::min(1.0, best_t[c] + half[c]);
        for (int i = 1; i <= per_round; ++i) {
          t.push_back(lo + (hi - lo) * double(i) / double(per_round + 1));
          line.push_back(uint8_t(c));
        }
      }
      curve_energies(r, Cr, t, line, e);
      ++out.calls;
      for (int c = 0; c < 2; ++c) {
        const double lo = std::max(0.0, best_t[c] - half[c]);
        const double hi = std::min(1.0, best_t[c] + half[c]);
        for (int i = 0; i < per_round; ++i) {
          const double v = e[c * per_round + i];
          if (v > best_e[c]) {
            best_e[c] = v;
            best_t[c] = t[c * per_round + i];
          }
        }
        half[c] = (hi - lo) / double(per_round + 1);
      }
    }
    out.t_max[j] = best_t[0];
    out.e_max[j] = best_e[0];
    out.straight_t_max[j] = best_t[1];
    out.straight_e_max[j] = best_e[1];
  }
  return out;
}

template class PathBatch<float>;
template class PathBatch<double>;

}  // namespace losstopo
