// The network maths, written once for the CPU engine (landscape.cpp) and the CUDA
// engine (cuda/landscape.cu): activations and their derivatives (through the
// activation's output, since the engines overwrite pre-activations with outputs),
// the output loss of one row, and the checks of the data and of sample indices.
// Functions marked LOSSTOPO_HD compile for host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "losstopo/mlp.hpp"

#if defined(__CUDACC__)
#define LOSSTOPO_HD __host__ __device__ __forceinline__
#else
#define LOSSTOPO_HD inline
#endif

namespace losstopo::math {

// Elementary functions in T's own precision on host and device.
#if defined(__CUDA_ARCH__)
template <typename T> LOSSTOPO_HD T exp_(T x) { return ::exp(x); }
template <typename T> LOSSTOPO_HD T expm1_(T x) { return ::expm1(x); }
template <typename T> LOSSTOPO_HD T log1p_(T x) { return ::log1p(x); }
template <typename T> LOSSTOPO_HD T tanh_(T x) { return ::tanh(x); }
LOSSTOPO_HD double log_(double x) { return ::log(x); }
#else
template <typename T> LOSSTOPO_HD T exp_(T x) { return std::exp(x); }
template <typename T> LOSSTOPO_HD T expm1_(T x) { return std::expm1(x); }
template <typename T> LOSSTOPO_HD T log1p_(T x) { return std::log1p(x); }
template <typename T> LOSSTOPO_HD T tanh_(T x) { return std::tanh(x); }
LOSSTOPO_HD double log_(double x) { return std::log(x); }
#endif

// act(z) for a compile-time activation.
template <Activation A, typename T>
LOSSTOPO_HD T activate(T z) {
  if constexpr (A == Activation::ReLU) {
    return z > T(0) ? z : T(0);
  } else if constexpr (A == Activation::Softplus) {  // log(1 + e^z) without overflow
    return z > T(0) ? z + log1p_(exp_(-z)) : log1p_(exp_(z));
  } else if constexpr (A == Activation::Tanh) {
    return tanh_(z);
  } else if constexpr (A == Activation::Sigmoid) {
    if (z >= T(0)) return T(1) / (T(1) + exp_(-z));
    const T e = exp_(z);
    return e / (T(1) + e);
  } else {
    return z;
  }
}

// d act / d z expressed through the output a = act(z).
template <Activation A, typename T>
LOSSTOPO_HD T derivative(T a) {
  if constexpr (A == Activation::ReLU) {
    return a > T(0) ? T(1) : T(0);
  } else if constexpr (A == Activation::Softplus) {  // sigmoid(z) = 1 - exp(-softplus(z))
    return -expm1_(-a);
  } else if constexpr (A == Activation::Tanh) {
    return T(1) - a * a;
  } else if constexpr (A == Activation::Sigmoid) {
    return a * (T(1) - a);
  } else {
    return T(1);
  }
}

// act''(z) / act'(z) expressed through the output a = act(z): what the R-operator
// (Hessian-vector products) needs, since d(act'(z)) = act'(z) * ratio * dz. Zero
// where act'' vanishes (identity; ReLU almost everywhere).
template <Activation A, typename T>
LOSSTOPO_HD T curvature_ratio(T a) {
  if constexpr (A == Activation::Softplus) {  // sigma'(z) / sigma(z) = 1 - sigma(z)
    return exp_(-a);
  } else if constexpr (A == Activation::Tanh) {
    return T(-2) * a;
  } else if constexpr (A == Activation::Sigmoid) {
    return T(1) - T(2) * a;
  } else {
    return T(0);
  }
}

// Calls f(std::integral_constant-like tag) with the activation as a compile-time
// value, so a loop inside f is compiled once per activation (no switch per element).
template <Activation A>
struct ActTag {
  static constexpr Activation value = A;
};
template <typename F>
LOSSTOPO_HD void dispatch(Activation a, F&& f) {
  switch (a) {
    case Activation::Identity: f(ActTag<Activation::Identity>{}); return;
    case Activation::ReLU: f(ActTag<Activation::ReLU>{}); return;
    case Activation::Softplus: f(ActTag<Activation::Softplus>{}); return;
    case Activation::Tanh: f(ActTag<Activation::Tanh>{}); return;
    case Activation::Sigmoid: f(ActTag<Activation::Sigmoid>{}); return;
  }
}

template <typename T>
LOSSTOPO_HD T activate(Activation a, T z) {
  switch (a) {
    case Activation::ReLU: return activate<Activation::ReLU>(z);
    case Activation::Softplus: return activate<Activation::Softplus>(z);
    case Activation::Tanh: return activate<Activation::Tanh>(z);
    case Activation::Sigmoid: return activate<Activation::Sigmoid>(z);
    default: return z;
  }
}

template <typename T>
LOSSTOPO_HD T derivative(Activation a, T out) {
  switch (a) {
    case Activation::ReLU: return derivative<Activation::ReLU>(out);
    case Activation::Softplus: return derivative<Activation::Softplus>(out);
    case Activation::Tanh: return derivative<Activation::Tanh>(out);
    case Activation::Sigmoid: return derivative<Activation::Sigmoid>(out);
    default: return T(1);
  }
}

// The loss of one output row o (k values, after the output activation `act`): the
// cross-entropy against `label`, or the summed squared error against t (k values).
// With d, writes dLoss/dz * scale there (d may alias o). *correct becomes whether
// the argmax is the label. scratch (k values) keeps the exponentials between the two
// passes of the cross-entropy; without it they are computed again (same values).
template <typename T>
LOSSTOPO_HD double row_loss(Loss loss, Activation act, const T* o, int k, int32_t label,
                            const T* t, T* d, T scale, T* scratch, bool* correct) {
  if (loss == Loss::CrossEntropy) {
    int arg = 0;
    T m = o[0];
    for (int j = 1; j < k; ++j)
      if (o[j] > m) { m = o[j]; arg = j; }
    *correct = arg == label;
    double s = 0.0;
    for (int j = 0; j < k; ++j) {
      const T e = exp_(o[j] - m);
      if (scratch) scratch[j] = e;
      s += double(e);
    }
    const double value = double(m) + log_(s) - double(o[label]);
    if (d) {
      const T inv = T(1.0 / s);
      for (int j = 0; j < k; ++j) {
        const T a = o[j];
        T p = (scratch ? scratch[j] : exp_(a - m)) * inv;
        if (j == label) p -= T(1);
        d[j] = p * scale * derivative(act, a);
      }
    }
    return value;
  }
  *correct = false;
  double s = 0.0;
  for (int j = 0; j < k; ++j) {
    const T a = o[j];
    const T r = a - t[j];
    s += double(r) * double(r);
    if (d) d[j] = T(2) * r * scale * derivative(act, a);
  }
  return s;
}

template <typename T>
LOSSTOPO_HD T curvature_ratio(Activation a, T out) {
  switch (a) {
    case Activation::Softplus: return curvature_ratio<Activation::Softplus>(out);
    case Activation::Tanh: return curvature_ratio<Activation::Tanh>(out);
    case Activation::Sigmoid: return curvature_ratio<Activation::Sigmoid>(out);
    default: return T(0);
  }
}

// The directional derivative (R-operator) of row_loss's delta: o (k values, after
// the output activation `act`), d its delta as row_loss wrote it (scale included),
// rz the directional derivative of the output's pre-activations; writes rd. The
// loss's Hessian with respect to o is diag(p) - p p^T (softmax p) for the
// cross-entropy and 2 I for the squared error.
template <typename T>
LOSSTOPO_HD void row_loss_rop(Loss loss, Activation act, const T* o, int k, const T* d,
                              const T* rz, T* rd, T scale) {
  if (loss == Loss::CrossEntropy) {
    // In double: near a minimum p_label is within rounding of 1 in float, and
    // R{o}_j - p . R{o} would cancel.
    T m = o[0];
    for (int j = 1; j < k; ++j) m = o[j] > m ? o[j] : m;
    double s = 0.0, pr = 0.0;
    for (int j = 0; j < k; ++j) {
      const double e = double(exp_(o[j] - m));
      s += e;
      pr += e * double(derivative(act, o[j])) * double(rz[j]);
    }
    pr /= s;  // p . R{o}
    for (int j = 0; j < k; ++j) {
      const double f1 = double(derivative(act, o[j]));
      const double p = double(exp_(o[j] - m)) / s;
      rd[j] = T(double(scale) * p * (f1 * double(rz[j]) - pr) * f1) +
              d[j] * curvature_ratio(act, o[j]) * rz[j];
    }
    return;
  }
  for (int j = 0; j < k; ++j) {
    const T f1 = derivative(act, o[j]);
    rd[j] = scale * T(2) * f1 * f1 * rz[j] + d[j] * curvature_ratio(act, o[j]) * rz[j];
  }
}

// The factor turning summed row losses into the mean loss: 1/N for cross-entropy,
// 1/(N k) for the squared error (a mean over all outputs).
inline double mean_factor(const MLPSpec& s, int64_t N) {
  return s.loss == Loss::CrossEntropy ? 1.0 / double(N) : 1.0 / (double(N) * s.sizes.back());
}

// ---------------------------------------------------------------- host checks

// The dataset an engine is built on: n samples, labels for cross-entropy, targets
// (or the input itself) for the squared error.
inline void check_data(const MLPSpec& s, int64_t n, const int32_t* labels, bool has_targets) {
  if (n <= 0) throw std::invalid_argument("X: need at least one sample");
  if (n > std::numeric_limits<int>::max())
    throw std::invalid_argument("X: more samples than a BLAS dimension can hold");
  const int d_in = s.sizes.front(), d_out = s.sizes.back();
  if (s.loss == Loss::CrossEntropy) {
    if (!labels) throw std::invalid_argument("y: cross_entropy needs integer labels");
    for (int64_t i = 0; i < n; ++i)
      if (labels[i] < 0 || labels[i] >= d_out)
        throw std::invalid_argument("y: label " + std::to_string(labels[i]) + " outside [0, " +
                                    std::to_string(d_out) + ")");
  } else if (!has_targets && d_out != d_in) {
    throw std::invalid_argument(
        "mse without targets reconstructs the input: needs sizes[-1] == sizes[0]");
  }
}

// P parameter vectors of width h1 in one call.
inline void check_vectors(const void* theta, int64_t P, int h1) {
  if (!theta || P <= 0) throw std::invalid_argument("theta: need at least one parameter vector");
  if (P * int64_t(h1) > std::numeric_limits<int>::max())
    throw std::invalid_argument("theta: too many vectors for one call");
}

// count sample indices, each in [0, n).
inline void check_samples(const int64_t* samples, int64_t count, int64_t n) {
  if (!samples || count <= 0) throw std::invalid_argument("samples: need at least one sample");
  for (int64_t i = 0; i < count; ++i)
    if (samples[i] < 0 || samples[i] >= n)
      throw std::invalid_argument("samples: index " + std::to_string(samples[i]) +
                                  " outside the dataset [0, " + std::to_string(n) + ")");
}

// Basis combinations: index (P * nnz) into Q basis vectors.
inline void check_combination(int64_t P, int64_t Q, const int32_t* index, int nnz) {
  if (Q < 1 || nnz < 1) throw std::invalid_argument("basis: need at least one vector");
  for (int64_t i = 0; i < P * nnz; ++i)
    if (index[i] < 0 || index[i] >= Q) throw std::invalid_argument("index: outside the basis");
}

}  // namespace losstopo::math
