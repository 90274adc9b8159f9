// What the bindings of the CPU and the CUDA engines share: the network description
// from Python's names, and evaluate() / evaluate_each() for any class with the
// Objective<T> evaluation methods.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/mlp.hpp"

namespace losstopo_py {

namespace py = pybind11;

// The MLP described by the Python layer's names; throws std::invalid_argument.
inline losstopo::MLPSpec make_spec(const std::vector<int>& sizes,
                                   const std::vector<std::string>& hidden,
                                   const std::string& output, bool bias, const std::string& loss) {
  losstopo::MLPSpec s;
  s.sizes = sizes;
  for (const auto& h : hidden) s.hidden.push_back(losstopo::parse_activation(h));
  s.output = losstopo::parse_activation(output);
  s.bias = bias;
  s.loss = losstopo::parse_loss(loss);
  s.validate();
  return s;
}

template <typename T, typename Engine>
py::tuple engine_evaluate(const Engine& self, py::array_t<T, py::array::c_style> theta, bool grad,
                          bool accuracy,
                          std::optional<py::array_t<int64_t, py::array::c_style>> samples) {
  if (theta.ndim() != 2 || theta.shape(1) != self.num_params())
    throw std::invalid_argument("theta: expected shape (P, " +
                                std::to_string(self.num_params()) + ")");
  if (accuracy && !self.classifier())
    throw std::invalid_argument("accuracy needs a cross_entropy network");
  if (samples && samples->ndim() != 1)
    throw std::invalid_argument("samples: expected a 1-D index array");
  const int64_t P = theta.shape(0), D = self.num_params();
  py::array_t<T> loss(P);
  py::object g = py::none(), a = py::none();
  T* gp = nullptr;
  T* ap = nullptr;
  if (grad) {
    py::array_t<T> ga({P, D});
    gp = ga.mutable_data();
    g = ga;
  }
  if (accuracy) {
    py::array_t<T> aa(P);
    ap = aa.mutable_data();
    a = aa;
  }
  const T* tp = theta.data();
  T* lp = loss.mutable_data();
  const int64_t* sp = samples ? samples->data() : nullptr;
  const int64_t ns = samples ? samples->shape(0) : 0;
  {
    py::gil_scoped_release release;
    self.evaluate(tp, P, lp, gp, ap, sp, ns);
  }
  return py::make_tuple(loss, g, a);
}

template <typename T, typename Engine>
py::tuple engine_evaluate_each(const Engine& self, py::array_t<T, py::array::c_style> theta,
                               py::array_t<int64_t, py::array::c_style> samples, bool grad) {
  if (theta.ndim() != 2 || theta.shape(1) != self.num_params())
    throw std::invalid_argument("theta: expected shape (P, " +
                                std::to_string(self.num_params()) + ")");
  const int64_t P = theta.shape(0), D = self.num_params();
  if (samples.ndim() != 2 || samples.shape(0) != P || samples.shape(1) < 1)
    throw std::invalid_argument("samples: expected shape (P, B)");
  const int64_t B = samples.shape(1);
  py::array_t<T> loss(P);
  py::object g = py::none();
  T* gp = nullptr;
  if (grad) {
    py::array_t<T> ga({P, D});
    gp = ga.mutable_data();
    g = ga;
  }
  const T* tp = theta.data();
  const int64_t* sp = samples.data();
  T* lp = loss.mutable_data();
  {
    py::gil_scoped_release release;
    self.evaluate_each(tp, P, sp, B, lp, gp);
  }
  return py::make_tuple(loss, g);
}

}  // namespace losstopo_py
