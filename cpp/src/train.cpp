#include "losstopo/train.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

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

namespace {
[[noreturn]] void bad_checkpoint(const std::string& what) {
  throw std::invalid_argument("checkpoint: " + what);
}

template <typename V>
void check_size(const V& v, size_t n, const char* name) {
  if (v.size() != n)
    bad_checkpoint(std::string(name) + " has " + std::to_string(v.size()) + " values, expected " +
                   std::to_string(n));
}

template <typename T>
bool all_finite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}
}  // namespace

// Everything restore() takes from a checkpoint is checked here before the trainer
// indexes with it: sizes, the epoch, status codes, finiteness of the running runs'
// parameters, curves not measured beyond the epoch, and the best epochs being where
// the recorded curves have their minima (the rule record() follows).
template <typename T>
void Trainer<T>::check_restored(int epoch, const LBFGSState* st) const {
  const int64_t R = R_, D = D_, E1 = p_.epochs + 1;
  if (epoch < 0 || epoch > p_.epochs)
    bad_checkpoint("epoch " + std::to_string(epoch) + " outside [0, " +
                   std::to_string(p_.epochs) + "]");
  check_size(theta, size_t(R * D), "theta");
  check_size(best_train_theta, size_t(R * D), "best_train_theta");
  check_size(best_test_theta, size_t(R * D), "best_test_theta");
  if (!velocity.empty()) check_size(velocity, size_t(R * D), "velocity");
  for (auto* c : {&train_loss, &test_loss, &train_acc, &test_acc})
    check_size(*c, size_t(R * E1), "curves");
  check_size(best_train_epoch, size_t(R), "best_train_epoch");
  check_size(best_test_epoch, size_t(R), "best_test_epoch");
  check_size(status, size_t(R), "status");
  for (int64_t r = 0; r < R; ++r) {
    const std::string run = "run " + std::to_string(r) + ": ";
    if (status[r] < 0 || status[r] > int32_t(Status::Stopped))
      bad_checkpoint(run + "status " + std::to_string(status[r]) + " is not a status code");
    if (status[r] == 0 && !all_finite(&theta[r * D], D))
      bad_checkpoint(run + "a running run's parameters are not finite");
    if (!velocity.empty() && status[r] == 0 && !all_finite(&velocity[r * D], D))
      bad_checkpoint(run + "a running run's velocity is not finite");
    auto check_best = [&](const std::vector<double>& loss, int32_t be, bool measured,
                          const std::vector<T>& best, const char* name) {
      for (int64_t e = epoch + 1; e < E1; ++e)
        if (!std::isnan(loss[r * E1 + e]))
          bad_checkpoint(run + name + " curve holds values beyond epoch " + std::to_string(epoch));
      int32_t want = -1;  // the first epoch of the lowest finite value (record()'s rule)
      for (int64_t e = 0; measured && e <= epoch; ++e) {
        const double v = loss[r * E1 + e];
        if (std::isfinite(v) && (want < 0 || v < loss[r * E1 + want])) want = int32_t(e);
      }
      if (be != want)
        bad_checkpoint(run + "best_" + name + "_epoch is " + std::to_string(be) +
                       ", but the recorded curve has its minimum at " + std::to_string(want));
      if (be >= 0 && !all_finite(&best[r * D], D))
        bad_checkpoint(run + "best_" + name + "_theta is not finite");
    };
    check_best(train_loss, best_train_epoch[r], true, best_train_theta, "train");
    check_best(test_loss, best_test_epoch[r], test_ != nullptr, best_test_theta, "test");
  }
  if (!lbfgs_ || epoch == 0) return;
  if (!st) bad_checkpoint("missing L-BFGS state");
  const int m = p_.lbfgs.history;
  check_size(st->f, size_t(R), "lbfgs_f");
  check_size(st->g, size_t(R * D), "lbfgs_g");
  check_size(st->S, size_t(R) * m * D, "lbfgs_S");
  check_size(st->Y, size_t(R) * m * D, "lbfgs_Y");
  for (auto* v : {&st->count, &st->nit, &st->nfev, &st->njev}) check_size(*v, size_t(R), "lbfgs");
  for (int64_t r = 0; r < R; ++r) {
    const std::string run = "run " + std::to_string(r) + ": ";
    if (st->count[r] < 0 || st->count[r] > m)
      bad_checkpoint(run + "L-BFGS history size " + std::to_string(st->count[r]) +
                     " outside [0, " + std::to_string(m) + "]");
    if (st->nit[r] < 0 || st->nit[r] > epoch || st->nfev[r] < 0 || st->njev[r] < 0)
      bad_checkpoint(run + "L-BFGS counters out of range");
    if (status[r] == 0 &&
        (!std::isfinite(st->f[r]) || !all_finite(&st->g[r * D], D) ||
         !all_finite(&st->S[size_t(r) * m * D], int64_t(st->count[r]) * D) ||
         !all_finite(&st->Y[size_t(r) * m * D], int64_t(st->count[r]) * D)))
      bad_checkpoint(run + "a running run's L-BFGS state is not finite");
  }
}

template <typename T>
void Trainer<T>::restore(int epoch, const LBFGSState* st) {
  check_restored(epoch, st);
  epoch_ = epoch;
  if (!lbfgs_ || epoch == 0) return;
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
