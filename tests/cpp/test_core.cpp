// C++ unit tests of the pieces the Python tests reach only indirectly: the line
// searches and the two-loop recursion on analytic functions, and the path
// gradient on a quadratic landscape. No test framework: each check prints on
// failure, and the run ends with "N passed, M failed".
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "losstopo/losstopo.hpp"
#include "activations.hpp"
#include "isa.hpp"
#include "mix.hpp"
#include "row_losses.hpp"
#include "sparse_rows.hpp"
#include "network_math.hpp"

using namespace losstopo;

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

bool close(double a, double b, double tol) { return std::abs(a - b) <= tol; }

// Runs a line search on phi(u) = (u - c)^2 + 1 and returns the trials.
std::vector<double> search(LineSearch<double>& ls, double c, double scale) {
  auto phi = [c](double u) { return (u - c) * (u - c) + 1.0; };
  auto dphi = [c](double u) { return 2.0 * (u - c); };
  ls.start(phi(0), dphi(0), scale);
  std::vector<double> trials;
  while (!ls.done()) {
    const double u = ls.trial();
    trials.push_back(u);
    ls.report(phi(u), dphi(u));
  }
  return trials;
}

void test_golden_section() {
  GoldenSectionSearch<double> g;
  auto trials = search(g, 3.0, 5.0);
  check(trials.size() == 6, "golden: the paper's budget of 6 evaluations");
  check(close(trials[0], 1.0, 1e-12) && close(trials[1], 4.0, 1e-12) &&
            close(trials[2], 8.0, 1e-12),
        "golden: brackets with 0.2|r|, 0.8|r|, then doubling");
  check(g.step() > 1.0 && g.step() < 8.0 && g.value() < 10.0, "golden: step inside the bracket");

  GoldenParams many;
  many.max_evals = 200;
  many.ftol = 0.0;
  GoldenSectionSearch<double> precise(many);
  search(precise, 3.0, 5.0);
  check(close(precise.step(), 3.0, 1e-4), "golden: converges to the minimum within xtol");

  GoldenSectionSearch<double> up;
  up.start(1.0, 1.0, 1.0);
  while (!up.done()) {
    const double u = up.trial();
    up.report(1.0 + u, 1.0);
  }
  check(up.step() == 0.0 && up.value() == 1.0, "golden: never accepts an uphill step");

  GoldenSectionSearch<double> shrink;
  auto t2 = search(shrink, 0.01, 1.0);
  check(close(t2[1] / t2[0], 0.6180339887498949, 1e-12), "golden: shrinks by the golden ratio");
  check(shrink.step() > 0.0 && shrink.step() < 0.02, "golden: finds the nearby descent");
}

void test_strong_wolfe() {
  StrongWolfeSearch<double> w;
  auto phi = [](double u) { return std::cos(u + 0.5) + 0.1 * (u + 0.5) * (u + 0.5); };
  auto dphi = [](double u) { return -std::sin(u + 0.5) + 0.2 * (u + 0.5); };
  const double f0 = phi(0), g0 = dphi(0);
  w.start(f0, g0, 1.0);
  while (!w.done()) {
    const double u = w.trial();
    w.report(phi(u), dphi(u));
  }
  const double u = w.step();
  check(w.accepted(), "wolfe: accepts a point");
  check(phi(u) <= f0 + 1e-4 * u * g0, "wolfe: sufficient decrease");
  check(std::abs(dphi(u)) <= 0.9 * std::abs(g0), "wolfe: curvature condition");
}

// With at least as many pairs as updates, L-BFGS's two-loop recursion equals the
// BFGS inverse-Hessian update started from gamma I applied to g.
void test_two_loop_matches_bfgs() {
  const int n = 6, k = 4;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> N01;
  // a random SPD Hessian; s random, y = H s
  std::vector<double> M(n * n), Hs(n * n, 0.0);
  for (auto& v : M) v = N01(rng);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = i == j ? 1.0 : 0.0;
      for (int l = 0; l < n; ++l) s += M[i * n + l] * M[j * n + l];
      Hs[i * n + j] = s;
    }
  LBFGSHistory<double> hist(n, k);
  std::vector<std::vector<double>> S, Y;
  for (int it = 0; it < k; ++it) {
    std::vector<double> s(n), y(n, 0.0);
    for (auto& v : s) v = N01(rng);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) y[i] += Hs[i * n + j] * s[j];
    check(hist.push(s.data(), y.data(), 1e-4), "two-loop: a curvature pair is kept");
    S.push_back(s);
    Y.push_back(y);
  }
  // explicit BFGS inverse update: H <- (I - rho s y') H (I - rho y s') + rho s s'
  const double gamma = dot(S.back().data(), Y.back().data(), n) /
                       dot(Y.back().data(), Y.back().data(), n);
  std::vector<double> H(n * n, 0.0);
  for (int i = 0; i < n; ++i) H[i * n + i] = gamma;
  for (int it = 0; it < k; ++it) {
    const auto& s = S[it];
    const auto& y = Y[it];
    const double rho = 1.0 / dot(s.data(), y.data(), n);
    std::vector<double> V(n * n), T(n * n, 0.0), Hn(n * n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) V[i * n + j] = (i == j) - rho * s[i] * y[j];
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        for (int l = 0; l < n; ++l) T[i * n + j] += V[i * n + l] * H[l * n + j];
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        for (int l = 0; l < n; ++l) Hn[i * n + j] += T[i * n + l] * V[j * n + l];
        Hn[i * n + j] += rho * s[i] * s[j];
      }
    H = Hn;
  }
  std::vector<double> g(n), r(n), ref(n, 0.0);
  for (auto& v : g) v = N01(rng);
  hist.apply(g.data(), r.data());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) ref[i] += H[i * n + j] * g[j];
  double err = 0.0;
  for (int i = 0; i < n; ++i) err = std::max(err, std::abs(r[i] - ref[i]));
  check(err < 1e-10, "two-loop: equals the explicit BFGS inverse-Hessian product");

  std::vector<double> s(n, 1.0), y(n, -1.0);
  check(!hist.push(s.data(), y.data(), 1e-4) && hist.size() == 0,
        "two-loop: a pair with cos(s, y) < 1e-4 clears the history");
}

void test_lbfgs_on_a_quadratic() {
  const int n = 20;
  std::vector<double> d(n);
  for (int i = 0; i < n; ++i) d[i] = 1.0 + i;  // diagonal Hessian, condition 20
  auto f = [&](const double* X, int64_t R, double* v, double* g) {
    for (int64_t r = 0; r < R; ++r) {
      double s = 0.0;
      for (int i = 0; i < n; ++i) {
        const double x = X[r * n + i] - 1.0;
        s += 0.5 * d[i] * x * x;
        if (g) g[r * n + i] = d[i] * x;
      }
      v[r] = s;
    }
  };
  for (auto kind : {LineSearchKind::Golden, LineSearchKind::StrongWolfe}) {
    LBFGSParams p;
    p.line_search = kind;
    p.gtol = 1e-8;
    p.max_iter = 500;
    BatchLBFGS<double> opt(f, n, p);
    std::vector<double> x0(2 * n, 0.0);
    for (int i = 0; i < n; ++i) x0[n + i] = -3.0;
    opt.start(x0.data(), 2);
    opt.run();
    for (int r = 0; r < 2; ++r) {
      double err = 0.0;
      for (double v : opt.problem(r).x) err = std::max(err, std::abs(v - 1.0));
      check(opt.problem(r).status == Status::GradientTolerance && err < 1e-6,
            std::string("lbfgs: quadratic minimum, ") +
                (kind == LineSearchKind::Golden ? "golden" : "strong-Wolfe"));
    }
  }
}

// E(w) = 0.5 w' Q w on a 3-D space: the path objective's gradient against central
// differences, for each objective.
void test_path_gradient() {
  const int D = 3;
  const double Q[9] = {2.0, 0.3, 0.0, 0.3, 1.0, -0.2, 0.0, -0.2, 0.5};
  BatchFunction<double> energy = [&](const double* X, int64_t R, double* f, double* g) {
    for (int64_t r = 0; r < R; ++r) {
      const double* w = X + r * D;
      double e = 0.0;
      for (int i = 0; i < D; ++i) {
        double qw = 0.0;
        for (int j = 0; j < D; ++j) qw += Q[i * D + j] * w[j];
        e += 0.5 * w[i] * qw;
        if (g) g[r * D + i] = qw;
      }
      f[r] = e;
    }
  };
  const double A[D] = {1.0, -1.0, 0.5}, B[D] = {-1.0, 2.0, 0.0};
  for (auto obj : {PathObjective::Sum, PathObjective::SumSquares, PathObjective::Minimax}) {
    PathParams p;
    p.n_modes = 4;
    p.n_points = 12;
    p.lam = 0.7;
    p.objective = obj;
    p.temperature = 0.05;
    PathBatch<double> pb(energy, D, 1, A, B, p);
    std::mt19937_64 rng(7);
    std::normal_distribution<double> N01;
    std::vector<double> C(p.n_modes * D), dir(C.size()), grad(C.size()), e(p.n_points);
    for (auto& v : C) v = 0.3 * N01(rng);
    for (auto& v : dir) v = N01(rng);
    double f0;
    pb.objective(C.data(), {0}, &f0, grad.data(), e.data());
    const double h = 1e-6;
    std::vector<double> Cp(C), Cm(C);
    for (size_t i = 0; i < C.size(); ++i) {
      Cp[i] += h * dir[i];
      Cm[i] -= h * dir[i];
    }
    double fp, fm;
    pb.objective(Cp.data(), {0}, &fp, nullptr, e.data());
    pb.objective(Cm.data(), {0}, &fm, nullptr, e.data());
    const double fd = (fp - fm) / (2 * h);
    const double an = dot(grad.data(), dir.data(), int64_t(C.size()));
    check(std::abs(fd - an) <= 1e-6 * std::max(1.0, std::abs(fd)),
          "path: gradient matches central differences (objective " +
              std::to_string(int(obj)) + ")");
  }
}

}  // namespace

// An objective written outside the library: it forwards to a Landscape and offers
// (or not) the two capabilities through evaluators of its own that count their use.
struct Counting {
  int prepares = 0, line_calls = 0, accepts = 0, combination_calls = 0, evaluations = 0,
      sgd_epochs = 0;
};

class ForwardingLines final : public LineEvaluator<double> {
 public:
  ForwardingLines(std::unique_ptr<LineEvaluator<double>> inner, Counting& c)
      : inner_(std::move(inner)), c_(c) {}
  bool prepare(const double* x, const double* d, int64_t P) override {
    ++c_.prepares;
    return inner_->prepare(x, d, P);
  }
  bool prepare_carried(const double* x, const double* d, int64_t P, const int64_t* carried,
                       const double* u) override {
    ++c_.prepares;
    return inner_->prepare_carried(x, d, P, carried, u);
  }
  void values(const int64_t* lines, const double* u, int64_t n, double* loss) const override {
    ++c_.line_calls;
    inner_->values(lines, u, n, loss);
  }
  bool accept(const int64_t* lines, const double* u, int64_t n, double* loss,
              double* grad) override {
    ++c_.accepts;
    return inner_->accept(lines, u, n, loss, grad);
  }

 private:
  std::unique_ptr<LineEvaluator<double>> inner_;
  Counting& c_;
};

class TestObjective final : public Objective<double> {
 public:
  TestObjective(const Landscape<double>& ls, bool capable, Counting& c)
      : ls_(ls), capable_(capable), c_(c) {}
  int64_t num_params() const override { return ls_.num_params(); }
  int64_t num_samples() const override { return ls_.num_samples(); }
  bool classifier() const override { return ls_.classifier(); }
  void evaluate(const double* theta, int64_t P, double* loss, double* grad, double* acc,
                const int64_t* samples, int64_t ns) const override {
    ++c_.evaluations;
    ls_.evaluate(theta, P, loss, grad, acc, samples, ns);
  }
  void evaluate_each(const double* theta, int64_t P, const int64_t* samples, int64_t B,
                     double* loss, double* grad) const override {
    ls_.evaluate_each(theta, P, samples, B, loss, grad);
  }
  std::unique_ptr<LineEvaluator<double>> line_evaluator() const override {
    if (!capable_) return nullptr;
    return std::make_unique<ForwardingLines>(ls_.line_evaluator(), c_);
  }
  bool offers_combinations() const override { return capable_; }
  void evaluate_combination(const double* points, int64_t P, const double* V, int64_t Q,
                            const int32_t* index, const double* coef, int nnz, double* loss,
                            const double* proj, int64_t K, double* proj_grad,
                            const int64_t* samples, int64_t n_samples,
                            double* accuracy) const override {
    ++c_.combination_calls;
    ls_.evaluate_combination(points, P, V, Q, index, coef, nnz, loss, proj, K, proj_grad,
                             samples, n_samples, accuracy);
  }
  // Asked for whole epochs; declines (after counting), so the generic loop runs.
  bool run_sgd_epoch(double*, double*, int64_t, uint8_t*, const SGDParams&,
                     const int64_t*) const override {
    if (capable_) ++c_.sgd_epochs;
    return false;
  }

 private:
  const Landscape<double>& ls_;
  bool capable_;
  Counting& c_;
};

MLPSpec small_net() {
  MLPSpec s;
  s.sizes = {6, 5, 4, 3};
  s.hidden = {Activation::Tanh, Activation::Softplus};
  s.loss = Loss::CrossEntropy;
  return s;
}

void test_capabilities_are_asked_of_the_objective() {
  const MLPSpec s = small_net();
  std::mt19937_64 rng(5);
  std::normal_distribution<double> nd(0.0, 0.5);
  const int64_t n = 64, D = s.num_params(), R = 3;
  std::vector<double> X(n * 6), theta0(R * D);
  std::vector<int32_t> y(n);
  for (auto& v : X) v = nd(rng);
  for (int64_t i = 0; i < n; ++i) y[i] = int32_t(i % 3);
  for (auto& v : theta0) v = nd(rng);
  Landscape<double> ls(s, X.data(), n, y.data(), nullptr);
  Counting with, without;
  TestObjective capable(ls, true, with), plain(ls, false, without);

  // L-BFGS-GSS through the trainer: the capable objective's lines are used.
  TrainParams tp;
  tp.method = Method::LBFGS;
  tp.epochs = 4;
  Trainer<double> t1(capable, nullptr, theta0.data(), R, tp), t2(plain, nullptr, theta0.data(), R, tp),
      t3(ls, nullptr, theta0.data(), R, tp);
  t1.run(tp.epochs);
  t2.run(tp.epochs);
  t3.run(tp.epochs);
  check(with.prepares == 4 && with.line_calls > 0, "trainer: a capable objective's lines are used");
  check(with.accepts > 0, "trainer: accepted points' gradients come from the lines");
  check(without.prepares == 0 && without.line_calls == 0, "trainer: no lines when not offered");
  check(without.evaluations > with.evaluations,
        "trainer: without lines every trial is a full evaluation");
  double diff = 0.0;
  for (int64_t i = 0; i < R * D; ++i) diff = std::max(diff, std::abs(t1.theta[i] - t3.theta[i]));
  check(diff == 0.0, "trainer: the forwarded capability gives the native engine's numbers");
  for (int64_t i = 0; i < R * D; ++i) diff = std::max(diff, std::abs(t1.theta[i] - t2.theta[i]));
  check(diff < 1e-8, "trainer: with and without lines the same iterates to rounding");

  // SGD: the objective is asked to run each epoch itself.
  TrainParams sp;
  sp.epochs = 2;
  sp.sgd.batch_size = 16;
  Trainer<double> s1(capable, nullptr, theta0.data(), R, sp);
  s1.run(sp.epochs);
  check(with.sgd_epochs == 2, "sgd: the objective is asked to run every epoch");

  // Paths: the capable objective's combinations are used.
  PathParams pp;
  pp.n_modes = 3;
  pp.n_points = 9;
  pp.steps = 3;
  PathBatch<double> p1(capable, 1, &theta0[0], &theta0[D], pp), p2(plain, 1, &theta0[0], &theta0[D], pp);
  check(p1.uses_combinations() && !p2.uses_combinations(), "path: combinations when offered");
  p1.optimize();
  p2.optimize();
  check(with.combination_calls > 0 && without.combination_calls == 0,
        "path: the objective's combinations are called");
  double pd = 0.0;
  for (size_t i = 0; i < p1.coeffs.size(); ++i) pd = std::max(pd, std::abs(p1.coeffs[i] - p2.coeffs[i]));
  check(pd < 1e-9, "path: combinations and full evaluations give the same path to rounding");
  const PathMeasures m = p1.measure(p1.coeffs.data());
  check(m.calls <= 5, "path: a finished path is measured in at most 5 engine calls");
}

// The CPU engine runs the shared maths header's host code: one sample through a
// one-layer sigmoid network by math:: alone equals Landscape::evaluate bitwise.
void test_engine_runs_the_shared_maths() {
  MLPSpec s;
  s.sizes = {4, 3};
  s.output = Activation::Sigmoid;
  s.bias = false;
  s.loss = Loss::CrossEntropy;
  const double X[4] = {0.3, -1.2, 0.7, 2.0}, theta[12] = {0.1, -0.4, 0.3, 0.2, 0.5, 0.6,
                                                          -0.7, 0.1, -0.2, 0.3, 0.9, -0.5};
  const int32_t y[1] = {2};
  Landscape<double> ls(s, X, 1, y, nullptr);
  double loss = 0.0, grad[12];
  ls.evaluate(theta, 1, &loss, grad, nullptr, nullptr, 0);
  double o[3], d[3];
  for (int j = 0; j < 3; ++j) {
    double z = 0.0;
    for (int i = 0; i < 4; ++i) z += theta[j * 4 + i] * X[i];
    o[j] = math::activate<Activation::Sigmoid>(z);
  }
  bool correct = false;
  const double ref = math::row_loss(s.loss, s.output, o, 3, y[0], static_cast<const double*>(nullptr),
                                    d, 1.0, static_cast<double*>(nullptr), &correct);
  check(loss == ref, "maths: the engine's loss is the shared row_loss");
  bool same = true;
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 4; ++i) same &= std::abs(grad[j * 4 + i] - d[j] * X[i]) <= 1e-15;
  check(same, "maths: the engine's gradient is the shared derivative");
}

// The fused later layers (LOSSTOPO_FUSED) against the per-vector BLAS products, every
// variant, on odd widths and a sample count that is not a multiple of the block.
void test_fused_layers_match_blas() {
  MLPSpec s;
  s.sizes = {5, 13, 7, 33, 4};
  s.hidden = {Activation::Tanh, Activation::ReLU, Activation::Softplus};
  s.bias = true;
  s.loss = Loss::CrossEntropy;
  const int64_t n = 101, P = 3;
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  std::vector<double> X(n * 5);
  std::vector<int32_t> y(n);
  for (auto& v : X) v = nd(rng);
  for (auto& v : y) v = int32_t(rng() % 4);
  Landscape<double> ls(s, X.data(), n, y.data(), nullptr);
  const int64_t D = ls.num_params();
  std::vector<double> theta(P * D);
  for (auto& v : theta) v = 0.5 * nd(rng);
  auto run = [&](const char* mode, std::vector<double>& loss, std::vector<double>& grad) {
    setenv("LOSSTOPO_FUSED", mode, 1);
    loss.assign(P, 0.0);
    grad.assign(P * D, 0.0);
    ls.evaluate(theta.data(), P, loss.data(), grad.data());
  };
  std::vector<double> l0, g0;
  run("blas", l0, g0);
  for (const char* mode : {"scalar", "avx2", "avx512"}) {
    std::vector<double> l, g;
    run(mode, l, g);
    double err = 0.0, gmax = 0.0;
    for (int64_t p = 0; p < P; ++p) err = std::max(err, std::abs(l[p] - l0[p]) / std::abs(l0[p]));
    for (int64_t i = 0; i < P * D; ++i) {
      err = std::max(err, std::abs(g[i] - g0[i]));
      gmax = std::max(gmax, std::abs(g0[i]));
    }
    check(err <= 1e-12 * std::max(1.0, gmax),
          std::string("fused: ") + mode + " equals the BLAS products to rounding");
  }
  unsetenv("LOSSTOPO_FUSED");
}

// The first layer's row mixes (mix.hpp) at every instruction-set level this CPU has,
// against a plain double loop: widths narrower than, equal to and between vectors.
template <typename T>
void check_row_mixes(isa::Level level, const char* name) {
  std::mt19937 rng(11);
  std::normal_distribution<double> nd;
  for (int h : {3, 8, 16, 21, 50}) {
    const int64_t rows = 7;
    const int Q = 5, R = 4, nnz = 3;
    std::vector<T> in(rows * Q * h + 1), coef(R * nnz), out(rows * R * h, T(0));
    std::vector<int32_t> idx(R * nnz);
    for (auto& v : in) v = T(nd(rng));
    for (auto& v : coef) v = T(nd(rng));
    for (auto& v : idx) v = int32_t(rng() % Q);
    mix::Job<T> job{rows, h, R, nnz, idx.data(), coef.data(), in.data(), Q * h, out.data(),
                    R * h};
    mix::run(level, job);
    double err = 0.0;
    for (int64_t i = 0; i < rows; ++i)
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < h; ++j) {
          double want = 0.0;
          for (int k = 0; k < nnz; ++k)
            want += double(coef[r * nnz + k]) * double(in[i * Q * h + idx[r * nnz + k] * h + j]);
          err = std::max(err, std::abs(double(out[i * R * h + r * h + j]) - want));
        }
    // points on lines: out[i, p] = a[i, cols[p]] - u[p] b[i, cols[p]], with b the rows
    // of a shifted by one block (so cols[p] < Q - 1)
    std::vector<int64_t> cols = {2, 0, Q - 2};
    std::vector<T> u = {T(0.5), T(-1.25), T(2)}, lo(rows * 3 * h);
    mix::LineJob<T> line{rows, h, 3, cols.data(), u.data(), in.data(), in.data() + h,
                         int64_t(Q) * h, lo.data(), 3 * h};
    const int64_t ld = int64_t(Q) * h;
    mix::run(level, line);
    for (int64_t i = 0; i < rows; ++i)
      for (int p = 0; p < 3; ++p)
        for (int j = 0; j < h; ++j) {
          const int64_t c = i * ld + cols[p] * h + j;
          const double want = double(in[c]) - double(u[p]) * double(in[c + h]);
          err = std::max(err, std::abs(double(lo[i * 3 * h + p * h + j]) - want));
        }
    // in place (an L-BFGS carry): block p of a becomes a_p - u b_p
    std::vector<T> ip(in.begin(), in.begin() + rows * ld);
    for (int p = 0; p < 3; ++p) {
      const int64_t col = cols[p];
      mix::LineJob<T> upd{rows, h, 1, &col, &u[p], ip.data(), in.data() + h, ld,
                          ip.data() + col * h, ld};
      mix::run(level, upd);
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int p = 0; p < 3; ++p)
        for (int j = 0; j < h; ++j) {
          const int64_t c = i * ld + cols[p] * h + j;
          const double want = double(in[c]) - double(u[p]) * double(in[c + h]);
          err = std::max(err, std::abs(double(ip[c]) - want));
        }
    const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
    const std::string type = sizeof(T) == 4 ? ", float" : ", double";
    check(err <= tol, std::string("row mixes (") + name + type + ", h = " + std::to_string(h) +
                          ") equal the plain sums");
  }
}

// f(level, name) for each instruction-set level this CPU has.
template <typename F>
void for_each_level(F f) {
  const isa::Level best = isa::best_supported();
  const std::pair<isa::Level, const char*> levels[] = {{isa::Level::Scalar, "scalar"},
                                                      {isa::Level::Avx2, "avx2"},
                                                      {isa::Level::Avx512, "avx512"}};
  for (const auto& [level, name] : levels)
    if (level <= best) f(level, name);
}

void test_row_mixes() {
  for_each_level([](isa::Level level, const char* name) {
    check_row_mixes<float>(level, name);
    check_row_mixes<double>(level, name);
  });
}

// The vectorized softmax cross-entropy's exponentials at every level this CPU has: rows
// of two logits (0, x) give p_1 = e^x / (1 + e^x), within 3 ulp of the double value for
// x over expf's normal range (expf itself with the same division: 1.7 ulp), and the
// loss log(1 + e^x) to 1e-6; below the range the exponential is 0.
void test_softmax_exponentials() {
  const int64_t n = 100000;
  std::vector<float> out(2 * n), d(2 * n);
  std::vector<int32_t> labels(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    out[2 * i] = 0.0f;
    out[2 * i + 1] = -87.0f * float(i) / float(n - 1);
  }
  const isa::Level best = isa::best_supported();
  for (isa::Level level : {isa::Level::Scalar, isa::Level::Avx2, isa::Level::Avx512}) {
    if (level > best) continue;
    double correct = 0.0;
    const double loss = losses::cross_entropy(level, out.data(), 2, n, 2, labels.data(),
                                               d.data(), 2, 1.0f, &correct);
    double worst = 0.0, want_loss = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(double(out[2 * i + 1]));
      const double want = e / (1.0 + e);
      const float w = float(want);
      worst = std::max(worst, std::abs(d[2 * i + 1] - want) / (std::nextafter(w, 1.0f) - w));
      want_loss += std::log1p(e);
    }
    const std::string name = std::to_string(int(level));
    check(worst <= 3.0, "softmax exponentials (level " + name + ") within 3 ulp: " +
                            std::to_string(worst));
    check(std::abs(loss - want_loss) <= 1e-6 * want_loss && correct == double(n),
          "softmax loss (level " + name + ") of rows (0, x)");
    const float below[4] = {0.0f, -90.0f, 0.0f, -1000.0f};
    float db[4];
    const int32_t lab[2] = {0, 0};
    losses::cross_entropy(level, below, 2, 2, 2, lab, db, 2, 1.0f, &correct);
    check(db[1] == 0.0f && db[3] == 0.0f && db[0] == 0.0f,
          "softmax exponentials (level " + name + ") below the normal range are 0");
  }
}

// The vectorized float sigmoid at every level this CPU has, against the double value:
// within 3 ulp where the result is a normal float, 0 far below, and NaN kept; any n
// (whole vectors and the rest).
void test_vector_sigmoid() {
  const isa::Level best = isa::best_supported();
  for (isa::Level level : {isa::Level::Scalar, isa::Level::Avx2, isa::Level::Avx512}) {
    if (level > best) continue;
    const int64_t n = 200003;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = -87.0f + 174.0f * float(i) / float(n - 1);
    std::vector<float> y = x;
    const bool done = act::activate(level, Activation::Sigmoid, y.data(), n);
    double worst = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = 1.0 / (1.0 + std::exp(-double(x[i])));
      const float w = float(want);
      worst = std::max(worst, std::abs(y[i] - want) / (std::nextafter(w, 2.0f) - w));
    }
    const std::string name = std::to_string(int(level));
    check(done && worst <= 3.0,
          "vector sigmoid (level " + name + ") within 3 ulp: " + std::to_string(worst));
    float odd[5] = {-200.0f, std::nanf(""), 0.0f, 200.0f, -1.0f};
    act::activate(level, Activation::Sigmoid, odd, 5);
    check(odd[0] == 0.0f && std::isnan(odd[1]) && odd[2] == 0.5f && odd[3] == 1.0f &&
              std::abs(odd[4] - 0.268941421f) < 1e-7f,
          "vector sigmoid (level " + name + ") at -200, NaN, 0, 200, -1");
    check(!act::activate(level, Activation::Tanh, odd, 5), "only the sigmoid is vectorized");
  }
}

// The vectorized float softplus and its derivative (through the output) at every level
// this CPU has, against double values: within 3 ulp (the libm forms: 1.4 and 0.7),
// and at the ends of the range and NaN.
void test_vector_softplus() {
  const isa::Level best = isa::best_supported();
  auto softplus = [](double z) {
    return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
  };
  for (isa::Level level : {isa::Level::Scalar, isa::Level::Avx2, isa::Level::Avx512}) {
    if (level > best) continue;
    const int64_t n = 100003;
    std::vector<float> x(n), y, a(n + 3, 1.0f), d(n, 1.0f);  // a: 3 rows of stride n/3 + 1
    for (int64_t i = 0; i < n; ++i) x[i] = -87.0f + 174.0f * float(i) / float(n - 1);
    y = x;
    act::activate(level, Activation::Softplus, y.data(), n);
    for (int64_t i = 0; i < n; ++i) a[i] = float(softplus(x[i]));
    // the derivative on (rows x n/3) blocks of strides n/3 + 1 and n/3
    const int64_t cols = n / 3;
    act::multiply_derivative(level, Activation::Softplus, a.data(), cols + 1, d.data(), cols, 3,
                             cols);
    double worst = 0.0, worst_d = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = softplus(x[i]);
      const float w = float(want);
      worst = std::max(worst, std::abs(y[i] - want) / (std::nextafter(w, 1e30f) - w));
    }
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const double want = -std::expm1(-double(a[r * (cols + 1) + j]));
        const float w = float(want);
        if (w > 0.0f)
          worst_d = std::max(worst_d,
                             std::abs(d[r * cols + j] - want) / (std::nextafter(w, 1e30f) - w));
      }
    const std::string name = std::to_string(int(level));
    check(worst <= 3.0 && worst_d <= 3.0, "vector softplus (level " + name + ") within 3 ulp: " +
                                              std::to_string(worst) + ", derivative " +
                                              std::to_string(worst_d));
    float odd[4] = {-200.0f, std::nanf(""), 200.0f, 0.0f};
    act::activate(level, Activation::Softplus, odd, 4);
    check(odd[0] == 0.0f && std::isnan(odd[1]) && odd[2] == 200.0f &&
              std::abs(odd[3] - 0.693147181f) < 1e-7f,
          "vector softplus (level " + name + ") at -200, NaN, 200, 0");
  }
}

// The sparse first-layer products (sparse_rows.hpp) at every level this CPU has, against
// a double reference: out (r, m) = x b for rows x (r, d) with exact zeros (all-zero rows
// and columns among them), from the rows' panels, whole or a view from a group's start;
// and x^T c (d, m) from the panels of x's columns, overwriting and accumulating; widths m
// below, at and past a vector's, and row strides wider than m.
template <typename T>
void check_sparse_panels(isa::Level level, const char* name) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  for (int64_t r : {1, 3, 4, 9, 14}) {
    const int64_t d = 37;
    std::vector<T> x(r * d);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < d; ++j)
        x[i * d + j] = (j % 5 != 2 && i % 4 != 1 && u(rng) > 0.5) ? T(u(rng)) : T(0);
    sparse::Panels<T> rows, cols;
    sparse::panels(x.data(), r, d, d, false, rows);
    sparse::panels(x.data(), r, d, d, true, cols);
    for (int64_t m : {1, 3, 7, 16, 17, 33, 50}) {
      const int64_t ld = m + 5;
      std::vector<T> b(d * ld), c(r * ld);
      for (T& v : b) v = T(u(rng));
      for (T& v : c) v = T(u(rng));
      std::vector<T> out(r * ld, T(7));
      sparse::run(level, sparse::PanelJob<T>{rows.view(), b.data(), ld, m, out.data(), ld, false});
      double err = 0;
      for (int64_t i = 0; i < r; ++i)
        for (int64_t k = 0; k < m; ++k) {
          double ref = 0;
          for (int64_t j = 0; j < d; ++j) ref += double(x[i * d + j]) * double(b[j * ld + k]);
          err = std::max(err, std::abs(ref - double(out[i * ld + k])));
        }
      check(err <= tol * d, std::string("sparse rows x b, ") + name + ", r " +
                                std::to_string(r) + ", m " + std::to_string(m));
      if (r > 4) {  // the rows from the second group on, as a view
        std::vector<T> part((r - 4) * ld, T(0));
        sparse::run(level, sparse::PanelJob<T>{rows.view(4, r - 4), b.data(), ld, m, part.data(),
                                               ld, false});
        bool same = true;
        for (int64_t i = 4; i < r; ++i)
          for (int64_t k = 0; k < m; ++k) same &= part[(i - 4) * ld + k] == out[i * ld + k];
        check(same, std::string("sparse rows view, ") + name + ", m " + std::to_string(m));
      }
      std::vector<T> g(d * ld, T(0.5));
      for (bool acc : {false, true}) {
        sparse::run(level, sparse::PanelJob<T>{cols.view(), c.data(), ld, m, g.data(), ld, acc});
        double gerr = 0;
        for (int64_t j = 0; j < d; ++j)
          for (int64_t k = 0; k < m; ++k) {
            double ref = 0;
            for (int64_t i = 0; i < r; ++i) ref += double(x[i * d + j]) * double(c[i * ld + k]);
            if (acc) ref *= 2;  // the second run adds the same product to the first's
            gerr = std::max(gerr, std::abs(ref - double(g[j * ld + k])));
          }
        check(gerr <= tol * r * 2, std::string("sparse columns x^T c, ") + name +
                                       (acc ? ", accumulating" : "") + ", r " +
                                       std::to_string(r) + ", m " + std::to_string(m));
      }
    }
  }
}

void test_sparse_panels() {
  for_each_level([](isa::Level level, const char* name) {
    check_sparse_panels<float>(level, name);
    check_sparse_panels<double>(level, name);
  });
}

int main() {
  test_golden_section();
  test_strong_wolfe();
  test_two_loop_matches_bfgs();
  test_lbfgs_on_a_quadratic();
  test_path_gradient();
  test_capabilities_are_asked_of_the_objective();
  test_engine_runs_the_shared_maths();
  test_fused_layers_match_blas();
  test_row_mixes();
  test_softmax_exponentials();
  test_vector_sigmoid();
  test_vector_softplus();
  test_sparse_panels();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
