#include "losstopo/train.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace losstopo {

template <typename T>
Trainer<T>::Trainer(const Objective<T>& train, const Objective<T>* test, const T* theta0,
                    int64_t R, TrainParams params)
    : train_(train), test_(test), p_(params), R_(R), D_(train.num_params()) {
  if (R < 1) throw std::invalid_argument("runs: need at least one run");
  p_.validate();
  if (test && test->num_params() != D_)
    throw std::invalid_argument("test: landscape of a different network");
  theta.assign(theta0, theta0 + R * D_);
  best_train_theta = theta;
  best_test_theta = theta;
  if (p_.method == Method::SGD && p_.sgd.momentum > 0.0) velocity.assign(R * D_, T(0));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const size_t cells = size_t(R) * (p_.epochs + 1);
  train_loss.assign(cells, nan);
  test_loss.assign(cells, nan);
  train_acc.assign(cells, nan);
  test_acc.assign(cells, nan);
  best_train_epoch.assign(R, -1);
  best_test_epoch.assign(R, -1);
  status.assign(R, 0);
  if (p_.method == Method::LBFGS) {
    LBFGSParams lp = p_.lbfgs;
    lp.max_iter = p_.epochs;
    lbfgs_ = std::make_unique<BatchLBFGS<T>>(train_, lp);
  }
  if (p_.run_seeds.empty())
    for (int64_t r = 0; r < R; ++r) p_.run_seeds.push_back(p_.seed * 0x9E3779B97F4A7C15ull + uint64_t(r) + 1);
  if (int64_t(p_.run_seeds.size()) != R)
    throw std::invalid_argument("run_seeds: need one seed per run");
}

template <typename T>
bool Trainer<T>::finished() const {
  if (epoch_ >= p_.epochs) return true;
  for (int32_t s : status)
    if (s == 0) return false;
  return true;
}

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

template <typename T>
void Trainer<T>::record(int e) {
  const double t0 = now();
  const bool cls = train_.classifier();
  std::vector<T> l(R_), a(R_);
  const int64_t E1 = p_.epochs + 1;
  auto one = [&](const Objective<T>& ls, std::vector<double>& loss, std::vector<double>& acc,
                 std::vector<T>& best, std::vector<int32_t>& best_epoch) {
    ls.evaluate(theta.data(), R_, l.data(), nullptr, cls ? a.data() : nullptr, nullptr, 0);
    for (int64_t r = 0; r < R_; ++r) {
      loss[r * E1 + e] = double(l[r]);
      if (cls) acc[r * E1 + e] = double(a[r]);
      const int32_t be = best_epoch[r];
      if (std::isfinite(double(l[r])) && (be < 0 || double(l[r]) < loss[r * E1 + be])) {
        best_epoch[r] = e;
        std::copy(&theta[r * D_], &theta[(r + 1) * D_], &best[r * D_]);
      }
    }
  };
  one(train_, train_loss, train_acc, best_train_theta, best_train_epoch);
  if (test_) one(*test_, test_loss, test_acc, best_test_theta, best_test_epoch);
  eval_seconds += now() - t0;
}

template <typename T>
void Trainer<T>::run(int until, const std::function<bool(int)>& on_epoch) {
  until = std::min(until, p_.epochs);
  if (epoch_ == 0 && best_train_epoch[0] < 0) {
    record(0);
    const double t0 = now();
    if (lbfgs_) lbfgs_->start(theta.data(), R_);
    step_seconds += now() - t0;
  }
  while (epoch_ < until && !finished()) {
    const double t0 = now();
    if (p_.method == Method::SGD) {
      std::vector<uint8_t> active(R_);
      for (int64_t r = 0; r < R_; ++r) active[r] = status[r] == 0;
      sgd_epoch(train_, theta.data(), velocity.empty() ? nullptr : velocity.data(), R_,
                active.data(), p_.sgd, p_.run_seeds.data(), p_.seed, uint64_t(epoch_));
      for (int64_t r = 0; r < R_; ++r)
        if (status[r] == 0 && !active[r]) status[r] = kStoppedNonFinite;
    } else {
      lbfgs_->iterate();
      for (int64_t r = 0; r < R_; ++r) {
        const Problem<T>& q = lbfgs_->problem(r);
        std::copy(q.x.begin(), q.x.end(), &theta[r * D_]);
        status[r] = int32_t(q.status);
      }
    }
    step_seconds += now() - t0;
    ++epoch_;
    record(epoch_);
    if (epoch_ >= p_.epochs)
      for (auto& s : status)
        if (s == 0) s = int32_t(Status::MaxIterations);
    if (on_epoch && !on_epoch(epoch_)) break;
  }
}

template <typename T>
typename Trainer<T>::LBFGSState Trainer<T>::lbfgs_state() const {
  LBFGSState st;
  if (!lbfgs_ || lbfgs_->size() == 0) return st;
  const int m = p_.lbfgs.history;
  st.f.resize(R_);
  st.g.resize(R_ * D_);
  st.S.assign(size_t(R_) * m * D_, T(0));
  st.Y.assign(size_t(R_) * m * D_, T(0));
  st.count.resize(R_);
  st.nit.resize(R_);
  st.nfev.resize(R_);
  st.njev.resize(R_);
  for (int64_t r = 0; r < R_; ++r) {
    const Problem<T>& q = lbfgs_->problem(r);
    st.f[r] = q.f;
    std::copy(q.g.begin(), q.g.end(), &st.g[r * D_]);
    q.hist.export_pairs(&st.S[size_t(r) * m * D_], &st.Y[size_t(r) * m * D_]);
    st.count[r] = q.hist.size();
    st.nit[r] = q.nit;
    st.nfev[r] = q.nfev;
    st.njev[r] = q.njev;
  }
  return st;
}

template <typename T>
void Trainer<T>::restore(int epoch, const LBFGSState* st) {
  if (epoch < 0 || epoch > p_.epochs) throw std::invalid_argument("checkpoint: bad epoch");
  epoch_ = epoch;
  if (!lbfgs_ || epoch == 0) return;
  if (!st || st->f.size() != size_t(R_))
    throw std::invalid_argument("checkpoint: missing L-BFGS state");
  const int m = p_.lbfgs.history;
  lbfgs_->prepare(theta.data(), R_);
  for (int64_t r = 0; r < R_; ++r) {
    Problem<T>& q = lbfgs_->problem(r);
    q.f = st->f[r];
    std::copy(&st->g[r * D_], &st->g[(r + 1) * D_], q.g.begin());
    q.hist.import_pairs(&st->S[size_t(r) * m * D_], &st->Y[size_t(r) * m * D_], st->count[r]);
    q.nit = st->nit[r];
    q.nfev = st->nfev[r];
    q.njev = st->njev[r];
    q.status = Status(status[r]);
  }
}

template class Trainer<float>;
template class Trainer<double>;

}  // namespace losstopo
