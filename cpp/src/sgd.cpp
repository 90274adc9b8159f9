#include "losstopo/sgd.hpp"
#include "chunk_loop.hpp"
#include "denormals.hpp"

#include <omp.h>

#include <cmath>
#include <stdexcept>

namespace losstopo {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Unbiased integer in [0, bound) (Lemire's method).
uint64_t below(uint64_t& state, uint64_t bound) {
  for (;;) {
    const uint64_t x = splitmix64(state);
    const __uint128_t m = __uint128_t(x) * bound;
    const uint64_t lo = uint64_t(m);
    if (lo >= bound || lo >= (-bound) % bound) return uint64_t(m >> 64);
  }
}

}  // namespace

void permutation(uint64_t seed, uint64_t stream, uint64_t epoch, int64_t n, int64_t* out) {
  uint64_t state = seed;
  state = splitmix64(state) ^ (stream * 0xD1B54A32D192ED03ull);
  state = splitmix64(state) ^ (epoch * 0x8CB92BA72F3D8DD7ull);
  for (int64_t i = 0; i < n; ++i) out[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = int64_t(below(state, uint64_t(i + 1)));
    std::swap(out[i], out[j]);
  }
}

template <typename T>
int64_t sgd_epoch(const Objective<T>& ls, T* theta, T* velocity, int64_t R, uint8_t* active,
                  const SGDParams& p, const uint64_t* run_seeds, uint64_t shared_seed,
                  uint64_t epoch) {
  p.validate();
  if (p.momentum > 0.0 && !velocity) throw std::invalid_argument("velocity: needed for momentum");
  const int64_t n = ls.num_samples(), D = ls.num_params(), B = p.batch_size;
  const int64_t steps = (n + B - 1) / B;
  std::vector<int64_t> runs;
  for (int64_t r = 0; r < R; ++r)
    if (active[r]) runs.push_back(r);
  if (runs.empty()) return 0;

  // Minibatch orders: one shared, or one per run.
  const int64_t n_orders = p.shared_order ? 1 : int64_t(runs.size());
  std::vector<int64_t> order(size_t(n_orders) * n);
  for (int64_t k = 0; k < n_orders; ++k)
    permutation(p.shared_order ? shared_seed : run_seeds[runs[k]], 0, epoch, n,
                &order[size_t(k) * n]);

  // An objective that runs whole epochs itself (a GPU engine) does so here.
  if (ls.run_sgd_epoch(theta, velocity, R, active, p, order.data())) return steps;

  const T lr = T(p.lr), mu = T(p.momentum);
  const int nthreads = chunks::thread_count(ls.threads());
  std::vector<T> th, loss, grad;
  std::vector<int64_t> samples;
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t b0 = step * B, nb = std::min(B, n - b0);
    const int64_t A = int64_t(runs.size());
    if (A == 0) break;
    grad.resize(size_t(A) * D);
    loss.resize(A);
    const T* src = theta;  // the active runs' parameters, contiguous
    if (A < R) {
      th.resize(size_t(A) * D);
      for (int64_t a = 0; a < A; ++a)
        std::copy(theta + runs[a] * D, theta + (runs[a] + 1) * D, &th[size_t(a) * D]);
      src = th.data();
    }
    if (p.shared_order) {
      ls.evaluate(src, A, loss.data(), grad.data(), nullptr, &order[b0], nb);
    } else {
      samples.resize(size_t(A) * nb);
      for (int64_t a = 0; a < A; ++a)
        std::copy(&order[size_t(a) * n + b0], &order[size_t(a) * n + b0 + nb],
                  &samples[size_t(a) * nb]);
      ls.evaluate_each(src, A, samples.data(), nb, loss.data(), grad.data());
    }
    bool any_stopped = false;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t a = 0; a < A; ++a) {
      denormals::Flush flush;  // this thread, for this work
      const int64_t r = runs[a];
      if (!std::isfinite(loss[a])) {
        active[r] = 0;
        continue;
      }
      T* w = theta + r * D;
      const T* g = &grad[size_t(a) * D];
      if (mu > T(0)) {
        T* v = velocity + r * D;
        for (int64_t i = 0; i < D; ++i) {
          v[i] = mu * v[i] + g[i];
          w[i] -= lr * v[i];
        }
      } else {
        for (int64_t i = 0; i < D; ++i) w[i] -= lr * g[i];
      }
    }
    for (int64_t a = 0; a < A; ++a) any_stopped |= !active[runs[a]];
    if (any_stopped) {
      std::vector<int64_t> keep;
      std::vector<int64_t> keep_orders;
      for (int64_t a = 0; a < A; ++a) {
        if (!active[runs[a]]) continue;
        keep.push_back(runs[a]);
        if (!p.shared_order)
          keep_orders.insert(keep_orders.end(), &order[size_t(a) * n], &order[size_t(a + 1) * n]);
      }
      runs.swap(keep);
      if (!p.shared_order) order.swap(keep_orders);
    }
  }
  return steps;
}

template int64_t sgd_epoch<float>(const Objective<float>&, float*, float*, int64_t, uint8_t*,
                                  const SGDParams&, const uint64_t*, uint64_t, uint64_t);
template int64_t sgd_epoch<double>(const Objective<double>&, double*, double*, int64_t, uint8_t*,
                                   const SGDParams&, const uint64_t*, uint64_t, uint64_t);

}  // namespace losstopo
