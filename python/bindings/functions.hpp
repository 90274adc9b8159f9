// Shared by the bindings: batched objectives from Python, optimizer options.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "losstopo/landscape.hpp"
#include "losstopo/lbfgs.hpp"

namespace py = pybind11;

namespace losstopo_py {

using namespace losstopo;

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

// A batched objective from a native landscape (no GIL needed) or a Python callable
// fun(X (R, D)) -> (values (R,), grads (R, D)) (called with the GIL held).
template <typename T>
inline BatchFunction<T> make_function(py::object fun, int64_t D) {
  if (py::isinstance<Landscape<T>>(fun)) {
    const Landscape<T>* ls = fun.cast<const Landscape<T>*>();
    if (ls->num_params() != D) throw std::invalid_argument("x0: length differs from the landscape's");
    return [ls, fun](const T* X, int64_t R, T* f, T* g) { ls->evaluate(X, R, f, g); };
  }
  if (!PyCallable_Check(fun.ptr()))
    throw std::invalid_argument("fun: expected a callable or a Landscape");
  // An object with a loss(X) method gives values without gradients when only
  // values are asked for.
  const bool has_loss = py::hasattr(fun, "loss") && PyCallable_Check(fun.attr("loss").ptr());
  return [fun, D, has_loss](const T* X, int64_t R, T* f, T* g) {
    py::gil_scoped_acquire gil;
    carray<T> xa({R, D});
    std::memcpy(xa.mutable_data(), X, sizeof(T) * R * D);
    if (!g && has_loss) {
      auto v = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(
          fun.attr("loss")(xa));
      if (!v || v.size() != R)
        throw std::invalid_argument("fun.loss: values must have shape (" + std::to_string(R) +
                                    ",)");
      std::memcpy(f, v.data(), sizeof(T) * R);
      return;
    }
    py::object out = fun(xa);
    if (!py::isinstance<py::tuple>(out) || py::len(out) != 2)
      throw std::invalid_argument("fun: must return a tuple (values, grads)");
    py::tuple t = out.cast<py::tuple>();
    auto v = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(t[0]);
    if (!v || v.size() != R)
      throw std::invalid_argument("fun: values must have shape (" + std::to_string(R) + ",)");
    std::memcpy(f, v.data(), sizeof(T) * R);
    if (g) {
      auto ga = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(t[1]);
      if (!ga || ga.size() != R * D)
        throw std::invalid_argument("fun: grads must have shape (" + std::to_string(R) + ", " +
                                    std::to_string(D) + ")");
      std::memcpy(g, ga.data(), sizeof(T) * R * D);
    }
  };
}

inline LBFGSParams lbfgs_params(const py::dict& o) {
  LBFGSParams p;
  auto get = [&](const char* k, auto& v) {
    if (o.contains(k)) v = o[k].cast<std::decay_t<decltype(v)>>();
  };
  get("history", p.history);
  get("max_iter", p.max_iter);
  get("gtol", p.gtol);
  get("ftol", p.ftol);
  get("min_cos", p.min_cos);
  get("golden_init", p.golden.init);
  get("golden_expand", p.golden.expand);
  get("golden_xtol", p.golden.xtol);
  get("golden_ftol", p.golden.ftol);
  get("golden_max_evals", p.golden.max_evals);
  get("wolfe_c1", p.wolfe.c1);
  get("wolfe_c2", p.wolfe.c2);
  get("wolfe_max_evals", p.wolfe.max_evals);
  std::string ls = "golden";
  get("line_search", ls);
  if (ls == "golden") p.line_search = LineSearchKind::Golden;
  else if (ls == "strong_wolfe") p.line_search = LineSearchKind::StrongWolfe;
  else throw std::invalid_argument("line_search: expected 'golden' or 'strong_wolfe', got '" + ls + "'");
  if (p.history < 1) throw std::invalid_argument("history: must be at least 1");
  if (p.max_iter < 0) throw std::invalid_argument("max_iter: must be non-negative");
  if (p.golden.max_evals < 1 || p.wolfe.max_evals < 1)
    throw std::invalid_argument("max_evals: must be at least 1");
  return p;
}

}  // namespace losstopo_py
