// Microbenchmark: the first layer's two products over a dataset, dense (OpenBLAS, as
// the engine runs them today) against the sparse rows of cpp/src/sparse_rows.hpp,
// at the engine's shapes: X (N, d0) cut into chunks of C rows, the first layers of P
// vectors stacked (m = P h1 columns), one thread per block of chunks, BLAS
// single-threaded inside.
//   forward  Y (C, m)  = X_c W^T          dense: gemm;  sparse: rows of X_c times W^T
//   gradient G (m, d0) += delta_c^T X_c   dense: gemm;  sparse: columns of X_c times delta_c
// The sparse forward reads W^T (d0, m), made once per call, and the sparse gradient
// accumulates G^T (d0, m), transposed once at the end; both are in its time, and so
// is compressing each chunk's columns (its rows are compressed once per dataset, as
// an engine would hold them).
//
// Usage: sparse_first_layer [--data FILE --cols D] [--rows N] [--threads T]
//                           [--p 1,12,50] [--density 0.05,...] [--h1 50] [--reps R]
// FILE holds raw float32 rows of D columns (benchmarks/cpp/run_sparse.sh writes
// MNIST's there); without it the inputs are random with the given densities.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "blas.hpp"
#include "isa.hpp"
#include "sparse_rows.hpp"

using namespace losstopo;

namespace {

std::vector<double> parse_list(const char* s) {
  std::vector<double> out;
  std::string str(s);
  size_t at = 0;
  while (at <= str.size()) {
    size_t end = str.find(',', at);
    if (end == std::string::npos) end = str.size();
    out.push_back(std::atof(str.substr(at, end - at).c_str()));
    at = end + 1;
  }
  return out;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t chunk_rows(int64_t m, int64_t d0) {  // the engine's chunk_size
  const int64_t width = std::max(m, d0);
  return std::clamp<int64_t>((int64_t(1) << 20) / width, 64, 4096);
}

struct Case {
  std::vector<float> X;  // (N, d0)
  int64_t N, d0;
  double density;
  std::string name;
};

struct Timing {
  double fwd_dense, fwd_sparse, grad_dense, grad_sparse, fwd_err, grad_err;
  double fwd_panel, grad_panel;
  int64_t panel_bit_diffs;  // outputs where panels and rows differ (0: bitwise equal)
};

template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

Timing measure(const Case& cs, int64_t P, int h1, int nt, int reps) {
  const int64_t N = cs.N, d0 = cs.d0, m = P * h1, C = chunk_rows(m, d0);
  const int64_t nchunks = (N + C - 1) / C;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 0.05f);
  std::vector<float> W(m * d0), delta(N * m);
  for (auto& w : W) w = g(rng);
  for (auto& d : delta) d = g(rng);
  const isa::Level level = isa::chosen();

  // The dataset's rows compressed once (what an engine would hold), per chunk.
  std::vector<sparse::Block<float>> rows(nchunks);
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = c * C, nc = std::min(C, N - r0);
    sparse::compress(cs.X.data() + r0 * d0, nc, d0, d0, rows[c]);
  }
  std::vector<std::vector<float>> Y(nt, std::vector<float>(C * m));
  std::vector<std::vector<float>> G(nt, std::vector<float>(m * d0));
  std::vector<std::vector<float>> GT(nt, std::vector<float>(d0 * m));
  std::vector<float> WT;  // W transposed, made in each sparse forward's time
  std::vector<float> Yd(N * m), Ys(N * m);  // last rep's outputs, for the check
  std::vector<sparse::Block<float>> cols(nt);

  auto forward_dense = [&] {
    blas::SingleThreaded single;
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      for (int64_t c = nchunks * t / nt; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C, nc = std::min(C, N - r0);
        blas::gemm(blas::N, blas::T, int(nc), int(m), int(d0), 1.f, cs.X.data() + r0 * d0,
                   int(d0), W.data(), int(d0), 0.f, Yd.data() + r0 * m, int(m));
      }
    }
  };
  auto forward_sparse = [&] {
    WT = sparse::transposed(W.data(), m, d0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      for (int64_t c = nchunks * t / nt; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C;
        sparse::Job<float> job{rows[c].view(), WT.data(), m, m, Ys.data() + r0 * m, m, false};
        sparse::run(level, job);
      }
    }
  };
  auto grad_dense = [&] {
    blas::SingleThreaded single;
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t c0 = nchunks * t / nt;
      for (int64_t c = c0; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C, nc = std::min(C, N - r0);
        blas::gemm(blas::T, blas::N, int(m), int(d0), int(nc), 1.f, delta.data() + r0 * m,
                   int(m), cs.X.data() + r0 * d0, int(d0), c == c0 ? 0.f : 1.f, G[t].data(),
                   int(d0));
      }
    }
  };
  std::vector<float> Gs(m * d0);
  auto grad_sparse = [&] {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t c0 = nchunks * t / nt;
      for (int64_t c = c0; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C;
        sparse::transpose(rows[c].view(), d0, cols[t]);
        sparse::Job<float> job{cols[t].view(), delta.data() + r0 * m, m, m, GT[t].data(), m,
                               c != c0};
        sparse::run(level, job);
      }
      // thread 0's result kept for the check
      sparse::transpose_back(GT[t].data(), m, d0, t == 0 ? Gs.data() : G[t].data());
    }
  };
  std::vector<sparse::Panels<float>> pan(nt);
  std::vector<float> Yp(N * m), Gp(m * d0);
  auto forward_panels = [&] {
    WT = sparse::transposed(W.data(), m, d0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      for (int64_t c = nchunks * t / nt; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C, nc = std::min(C, N - r0);
        sparse::panels(cs.X.data() + r0 * d0, nc, d0, d0, false, pan[t]);
        sparse::PanelJob<float> job{pan[t].view(), WT.data(), m, m, Yp.data() + r0 * m, m, false};
        sparse::run(level, job);
      }
    }
  };
  auto grad_panels = [&] {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t c0 = nchunks * t / nt;
      for (int64_t c = c0; c < nchunks * (t + 1) / nt; ++c) {
        const int64_t r0 = c * C, nc = std::min(C, N - r0);
        sparse::panels(cs.X.data() + r0 * d0, nc, d0, d0, true, pan[t]);
        sparse::PanelJob<float> job{pan[t].view(), delta.data() + r0 * m, m, m, GT[t].data(), m,
                                    c != c0};
        sparse::run(level, job);
      }
      sparse::transpose_back(GT[t].data(), m, d0, t == 0 ? Gp.data() : G[t].data());
    }
  };
  Timing tm{};
  int64_t panel_bit_diffs = 0;
  tm.fwd_panel = best_of(reps, forward_panels);
  tm.fwd_dense = best_of(reps, forward_dense);
  tm.fwd_sparse = best_of(reps, forward_sparse);
  double err = 0, scale = 0;
  for (int64_t i = 0; i < N * m; ++i) {
    err = std::max({err, double(std::fabs(Yd[i] - Ys[i])), double(std::fabs(Yd[i] - Yp[i]))});
    scale = std::max(scale, double(std::fabs(Yd[i])));
    if (Yp[i] != Ys[i]) ++panel_bit_diffs;
  }
  tm.fwd_err = err / std::max(scale, 1e-30);
  tm.grad_dense = best_of(reps, grad_dense);
  std::vector<float> Gd(G[0]);  // thread 0's dense result
  tm.grad_sparse = best_of(reps, grad_sparse);
  tm.grad_panel = best_of(reps, grad_panels);
  err = 0, scale = 0;
  for (int64_t i = 0; i < m * d0; ++i) {
    if (Gp[i] != Gs[i]) ++panel_bit_diffs;
    err = std::max({err, double(std::fabs(Gd[i] - Gs[i])), double(std::fabs(Gd[i] - Gp[i]))});
    scale = std::max(scale, double(std::fabs(Gd[i])));
  }
  tm.grad_err = err / std::max(scale, 1e-30);
  tm.panel_bit_diffs = panel_bit_diffs;
  return tm;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data;
  int64_t cols = 784, N = 10000;
  int nt = 1, h1 = 50, reps = 3;
  std::vector<double> Ps{1, 12, 50}, dens{0.05, 0.1, 0.19, 0.3, 0.5};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--data") data = argv[i + 1];
    else if (a == "--cols") cols = std::atoll(argv[i + 1]);
    else if (a == "--rows") N = std::atoll(argv[i + 1]);
    else if (a == "--threads") nt = std::atoi(argv[i + 1]);
    else if (a == "--p") Ps = parse_list(argv[i + 1]);
    else if (a == "--density") dens = parse_list(argv[i + 1]);
    else if (a == "--h1") h1 = std::atoi(argv[i + 1]);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<Case> cases;
  if (!data.empty()) {
    std::ifstream f(data, std::ios::binary | std::ios::ate);
    if (!f) {
      std::fprintf(stderr, "cannot read %s\n", data.c_str());
      return 2;
    }
    const int64_t total = int64_t(f.tellg()) / int64_t(sizeof(float)) / cols;
    Case cs;
    cs.N = std::min(N, total);
    cs.d0 = cols;
    cs.X.resize(cs.N * cols);
    f.seekg(0);
    f.read(reinterpret_cast<char*>(cs.X.data()), std::streamsize(cs.X.size() * sizeof(float)));
    int64_t nnz = 0;
    for (float x : cs.X) nnz += x != 0.f;
    cs.density = double(nnz) / double(cs.X.size());
    cs.name = "data";
    cases.push_back(cs);
  }
  for (double d : dens) {
    Case cs;
    cs.N = N;
    cs.d0 = cols;
    cs.X.resize(N * cols);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (auto& x : cs.X) x = u(rng) < d ? u(rng) : 0.f;
    cs.density = d;
    cs.name = "random";
    cases.push_back(cs);
  }
  const char* lv[] = {"", "scalar", "avx2", "avx512"};
  std::printf("# threads %d, N %lld, d0 %lld, h1 %d, vectors %s; times in ms (best of %d)\n",
              nt, (long long)N, (long long)cols, h1, lv[int(isa::chosen())], reps);
  std::printf("| inputs | density | P | fwd dense | fwd rows | fwd panels | grad dense | "
              "grad rows | grad panels | dense / rows | dense / panels | dense GFLOP/s | "
              "max rel err | panels != rows |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Case& cs : cases)
    for (double pd : Ps) {
      const int64_t P = int64_t(pd);
      const Timing t = measure(cs, P, h1, nt, reps);
      const double flop = 2.0 * double(cs.N) * double(cs.d0) * double(P * h1);
      const double dense = t.fwd_dense + t.grad_dense;
      std::printf("| %s | %.3f | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2fx | "
                  "%.2fx | %.0f | %.1e | %lld |\n",
                  cs.name.c_str(), cs.density, (long long)P, 1e3 * t.fwd_dense,
                  1e3 * t.fwd_sparse, 1e3 * t.fwd_panel, 1e3 * t.grad_dense,
                  1e3 * t.grad_sparse, 1e3 * t.grad_panel,
                  dense / (t.fwd_sparse + t.grad_sparse), dense / (t.fwd_panel + t.grad_panel),
                  2 * flop / dense / 1e9, std::max(t.fwd_err, t.grad_err),
                  (long long)t.panel_bit_diffs);
      std::fflush(stdout);
    }
  return 0;
}
