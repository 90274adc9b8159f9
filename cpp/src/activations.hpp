// Elementwise activations, written so every derivative is a function of the
// activation's output (the engine overwrites pre-activations with outputs).
#pragma once

#include <cmath>

#include "losstopo/mlp.hpp"

namespace losstopo::detail {

template <typename T>
inline T sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  T e = std::exp(z);
  return e / (T(1) + e);
}

template <typename T>
inline T softplus(T z) {  // log(1 + e^z) without overflow
  return z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

template <typename T>
inline void activate(Activation a, T* x, int64_t n) {
  switch (a) {
    case Activation::Identity: return;
    case Activation::ReLU:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > T(0) ? x[i] : T(0);
      return;
    case Activation::Softplus:
      for (int64_t i = 0; i < n; ++i) x[i] = softplus(x[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      return;
    case Activation::Sigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = sigmoid(x[i]);
      return;
  }
}

// d act / d z expressed through the output a = act(z).
template <typename T>
inline T derivative_from_output(Activation act, T a) {
  switch (act) {
    case Activation::Identity: return T(1);
    case Activation::ReLU: return a > T(0) ? T(1) : T(0);
    case Activation::Softplus: return -std::expm1(-a);  // sigmoid(z) = 1 - exp(-softplus(z))
    case Activation::Tanh: return T(1) - a * a;
    case Activation::Sigmoid: return a * (T(1) - a);
  }
  return T(1);
}

// d[i * ld_d + j] *= act'(a[i * ld_a + j]) for a (rows x n) block; the switch sits
// outside the loops so each loop vectorizes.
template <typename T>
inline void multiply_derivative(Activation act, const T* a, int64_t ld_a, T* d, int64_t ld_d,
                                int64_t rows, int64_t n) {
  auto apply = [&](auto f) {
    for (int64_t i = 0; i < rows; ++i) {
      const T* ar = a + i * ld_a;
      T* dr = d + i * ld_d;
      for (int64_t j = 0; j < n; ++j) dr[j] *= f(ar[j]);
    }
  };
  switch (act) {
    case Activation::Identity: return;
    case Activation::ReLU: return apply([](T v) { return v > T(0) ? T(1) : T(0); });
    case Activation::Softplus: return apply([](T v) { return -std::expm1(-v); });
    case Activation::Tanh: return apply([](T v) { return T(1) - v * v; });
    case Activation::Sigmoid: return apply([](T v) { return v * (T(1) - v); });
  }
}

}  // namespace losstopo::detail
