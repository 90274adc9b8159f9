// Using losstopo from C++ without Python: the Muller-Brown barrier with the path
// finder, and a tiny MLP trained with L-BFGS on the batched landscape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "losstopo/losstopo.hpp"

using namespace losstopo;

// Muller-Brown potential (scaled by 0.01) for a batch of 2-D points.
void muller_brown(const double* X, int64_t R, double* f, double* g) {
  const double A[4] = {-200, -100, -170, 15}, a[4] = {-1, -1, -6.5, 0.7},
               b[4] = {0, 0, 11, 0.6}, c[4] = {-10, -10, -6.5, 0.7}, x0[4] = {1, 0, -0.5, -1},
               y0[4] = {0, 0.5, 1.5, 1};
  for (int64_t r = 0; r < R; ++r) {
    const double x = X[2 * r], y = X[2 * r + 1];
    double v = 0, gx = 0, gy = 0;
    for (int k = 0; k < 4; ++k) {
      const double dx = x - x0[k], dy = y - y0[k];
      const double e = A[k] * std::exp(a[k] * dx * dx + b[k] * dx * dy + c[k] * dy * dy);
      v += e;
      gx += e * (2 * a[k] * dx + b[k] * dy);
      gy += e * (b[k] * dx + 2 * c[k] * dy);
    }
    f[r] = 0.01 * v;
    if (g) {
      g[2 * r] = 0.01 * gx;
      g[2 * r + 1] = 0.01 * gy;
    }
  }
}

int main() {
  // 1. The barrier between the two deepest Muller-Brown minima.
  const double A[2] = {-0.55822, 1.44173}, B[2] = {0.62350, 0.02804};
  PathParams pp;
  pp.n_points = 100;
  pp.lam = 1.0;
  pp.lr = 0.01;
  pp.steps = 2000;
  pp.objective = PathObjective::Minimax;
  pp.temperature = 0.012;
  PathBatch<double> paths(muller_brown, 2, 1, A, B, pp);
  paths.optimize();
  // The path's highest point, on a grid ten times finer than the optimized one.
  const int fine = 10 * (pp.n_points - 1) + 1;
  std::vector<double> t(fine), W(2 * fine), energies(fine);
  for (int m = 0; m < fine; ++m) t[m] = double(m) / (fine - 1);
  paths.points(paths.best_coeffs.data(), t.data(), fine, W.data());
  muller_brown(W.data(), fine, energies.data(), nullptr);
  double barrier = energies[0];
  for (double e : energies) barrier = std::max(barrier, e);
  std::printf("Muller-Brown (x0.01): barrier %.4f (saddle -0.4066), %lld energy points\n",
              barrier, static_cast<long long>(paths.energy_points));

  // 2. A 4-8-3 MLP on a small synthetic problem, trained with L-BFGS-GSS.
  std::mt19937_64 rng(0);
  std::normal_distribution<float> noise(0.f, 0.3f);
  const int n = 300;
  std::vector<float> X(n * 4);
  std::vector<int32_t> y(n);
  for (int i = 0; i < n; ++i) {
    y[i] = i % 3;
    for (int j = 0; j < 4; ++j) X[i * 4 + j] = (j == y[i] ? 1.f : 0.f) + noise(rng);
  }
  MLPSpec spec;
  spec.sizes = {4, 8, 3};
  spec.hidden = {Activation::Tanh};
  Landscape<float> ls(spec, X.data(), n, y.data(), nullptr);
  std::vector<float> theta0(ls.num_params());
  std::uniform_real_distribution<float> init(-0.5f, 0.5f);
  for (auto& v : theta0) v = init(rng);
  LBFGSParams lp;
  lp.max_iter = 100;
  BatchLBFGS<float> opt(
      [&ls](const float* Xp, int64_t R, float* f, float* g) { ls.evaluate(Xp, R, f, g); },
      ls.num_params(), lp);
  opt.start(theta0.data(), 1);
  const float f0 = opt.problem(0).f;
  opt.run();
  float acc = 0, loss = 0;
  ls.evaluate(opt.problem(0).x.data(), 1, &loss, nullptr, &acc);
  std::printf("MLP 4-8-3: loss %.4f -> %.4f in %d iterations (%d evaluations), accuracy %.3f\n",
              f0, loss, opt.problem(0).nit, opt.problem(0).nfev, acc);
  const bool ok = std::abs(barrier - (-0.4066)) < 0.02 && loss < 0.5 * f0 && acc > 0.8;
  std::printf("%s\n", ok ? "example OK" : "example FAILED");
  return ok ? 0 : 1;
}
