// What every binding file shares: array conversion, dtype names, the GIL-taking
// callback wrappers, the network description from Python's names, and the
// evaluate()/evaluate_each() methods of the bound Objective base class.
#pragma once

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/lbfgs.hpp"
#include "losstopo/mlp.hpp"
#include "losstopo/objective.hpp"

namespace losstopo_py {

namespace py = pybind11;
using namespace losstopo;

template <typename T>
using carray = py::array_t<T, py::array::c_style>;
template <typename T>
using anyarray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// The suffix of the bound classes of each precision: LandscapeF32, LandscapeF64, ...
template <typename T>
constexpr const char* suffix() {
  return sizeof(T) == 4 ? "F32" : "F64";
}
template <typename T>
std::string class_name(const char* base) {
  return std::string(base) + suffix<T>();
}

// A copy of v as an array of the given shape.
template <typename T>
carray<T> to_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  carray<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), sizeof(T) * v.size());
  return a;
}

// h as a contiguous array of n values of T copied into dst; what names it in errors.
template <typename T>
void copy_from(py::handle h, T* dst, int64_t n, const std::string& what) {
  auto a = anyarray<T>::ensure(h);
  if (!a || a.size() != n)
    throw std::invalid_argument(what + ": expected " + std::to_string(n) + " values");
  std::memcpy(dst, a.data(), sizeof(T) * n);
}

// The compiled objective behind a Python object (a bound Objective of any engine,
// CPU or CUDA), or null for anything else.
template <typename T>
const Objective<T>* native_objective(py::handle o) {
  if (o.is_none() || !py::isinstance<Objective<T>>(o)) return nullptr;
  return o.cast<const Objective<T>*>();
}

// A Python object held by C++ code that may copy or drop it without the GIL (a
// callback inside a std::function, an objective inside an engine object): the last
// copy releases the object with the GIL taken, so an exception that unwinds through
// a call made without the GIL (a path's setup whose callback raised) cannot free it
// unguarded. Call it, as any py::object, with the GIL held.
class GilObject {
 public:
  GilObject() = default;
  explicit GilObject(py::object o)
      : p_(new py::object(std::move(o)), [](py::object* q) {
          if (!Py_IsInitialized()) return;  // the interpreter is gone: leak, never crash
          py::gil_scoped_acquire gil;
          delete q;
        }) {}
  const py::object& operator*() const { return *p_; }
  const py::object* operator->() const { return p_.get(); }

 private:
  std::shared_ptr<py::object> p_;
};

// callback(int) -> None or bool (False stops), called with the GIL held.
inline std::function<bool(int)> step_callback(py::object callback) {
  if (callback.is_none()) return {};
  GilObject cb(std::move(callback));
  return [cb](int s) {
    py::gil_scoped_acquire gil;
    py::object r = (*cb)(s);
    return r.is_none() || r.cast<bool>();
  };
}

// A batched function from a compiled objective (no GIL needed) or a Python callable
// fun(X (R, D)) -> (values (R,), grads (R, D)) (called with the GIL held). An object
// with a loss(X) method gives values without gradients when only values are asked.
template <typename T>
BatchFunction<T> make_function(py::object fun, int64_t D) {
  if (const Objective<T>* obj = native_objective<T>(fun)) {
    if (obj->num_params() != D)
      throw std::invalid_argument("x0: length differs from the landscape's");
    GilObject keep(fun);  // the landscape lives as long as the function
    return [obj, keep](const T* X, int64_t R, T* f, T* g) {
      obj->evaluate(X, R, f, g, nullptr, nullptr, 0);
    };
  }
  if (!PyCallable_Check(fun.ptr()))
    throw std::invalid_argument("fun: expected a callable or a Landscape");
  // Values alone, when only values are asked for: fun.loss(X) or fun.energy(X).
  py::object values_of = py::none();
  for (const char* name : {"loss", "energy"})
    if (py::hasattr(fun, name) && PyCallable_Check(fun.attr(name).ptr())) {
      values_of = fun.attr(name);
      break;
    }
  GilObject callable(std::move(fun)), values(std::move(values_of));
  return [callable, D, values](const T* X, int64_t R, T* f, T* g) {
    py::gil_scoped_acquire gil;
    carray<T> xa({R, D});
    std::memcpy(xa.mutable_data(), X, sizeof(T) * R * D);
    const std::string shape = "(" + std::to_string(R) + ",)";
    if (!g && !values->is_none()) {
      copy_from((*values)(xa), f, R, "fun values of shape " + shape);
      return;
    }
    py::object out = (*callable)(xa);
    if (!py::isinstance<py::tuple>(out) || py::len(out) != 2)
      throw std::invalid_argument("fun: must return a tuple (values, grads)");
    py::tuple t = out.cast<py::tuple>();
    copy_from(t[0], f, R, "fun: values of shape " + shape);
    if (g)
      copy_from(t[1], g, R * D,
                "fun: grads of shape (" + std::to_string(R) + ", " + std::to_string(D) + ")");
  };
}

// The MLP described by the Python layer's names; throws std::invalid_argument.
inline MLPSpec make_spec(const std::vector<int>& sizes, const std::vector<std::string>& hidden,
                         const std::string& output, bool bias, const std::string& loss) {
  MLPSpec s;
  s.sizes = sizes;
  for (const auto& h : hidden) s.hidden.push_back(parse_activation(h));
  s.output = parse_activation(output);
  s.bias = bias;
  s.loss = parse_loss(loss);
  s.validate();
  return s;
}

// The shapes of a dataset handed to an engine's constructor.
template <typename T>
void check_data_shapes(const MLPSpec& s, const carray<T>& X, const std::optional<carray<int32_t>>& y,
                       const std::optional<carray<T>>& targets) {
  if (X.ndim() != 2 || X.shape(1) != s.sizes.front())
    throw std::invalid_argument("X: expected shape (n, " + std::to_string(s.sizes.front()) + ")");
  const int64_t n = X.shape(0);
  if (y && (y->ndim() != 1 || y->shape(0) != n))
    throw std::invalid_argument("y: expected shape (n,)");
  if (targets && (targets->ndim() != 2 || targets->shape(0) != n ||
                  targets->shape(1) != s.sizes.back()))
    throw std::invalid_argument("targets: expected shape (n, sizes[-1])");
}

template <typename T>
void check_theta(const Objective<T>& self, const carray<T>& theta) {
  if (theta.ndim() != 2 || theta.shape(1) != self.num_params())
    throw std::invalid_argument("theta: expected shape (P, " + std::to_string(self.num_params()) +
                                ")");
}

template <typename T>
py::tuple objective_evaluate(const Objective<T>& self, carray<T> theta, bool grad, bool accuracy,
                             std::optional<carray<int64_t>> samples) {
  check_theta(self, theta);
  if (accuracy && !self.classifier())
    throw std::invalid_argument("accuracy needs a cross_entropy network");
  if (samples && samples->ndim() != 1)
    throw std::invalid_argument("samples: expected a 1-D index array");
  const int64_t P = theta.shape(0), D = self.num_params();
  carray<T> loss(P);
  py::object g = py::none(), a = py::none();
  T* gp = nullptr;
  T* ap = nullptr;
  if (grad) {
    carray<T> ga({P, D});
    gp = ga.mutable_data();
    g = ga;
  }
  if (accuracy) {
    carray<T> aa(P);
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

template <typename T>
py::tuple objective_evaluate_each(const Objective<T>& self, carray<T> theta,
                                  carray<int64_t> samples, bool grad) {
  check_theta(self, theta);
  const int64_t P = theta.shape(0), D = self.num_params();
  if (samples.ndim() != 2 || samples.shape(0) != P || samples.shape(1) < 1)
    throw std::invalid_argument("samples: expected shape (P, B)");
  const int64_t B = samples.shape(1);
  carray<T> loss(P);
  py::object g = py::none();
  T* gp = nullptr;
  if (grad) {
    carray<T> ga({P, D});
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
