// Bindings of the Fourier path finder.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "functions.hpp"
#include "losstopo/path.hpp"

namespace py = pybind11;
using namespace losstopo;
using namespace losstopo_py;

namespace {

PathParams path_params(const py::dict& o) {
  PathParams p;
  auto get = [&](const char* k, auto& v) {
    if (o.contains(k)) v = o[k].cast<std::decay_t<decltype(v)>>();
  };
  get("n_modes", p.n_modes);
  get("n_points", p.n_points);
  get("lam", p.lam);
  get("temperature", p.temperature);
  get("steps", p.steps);
  get("lr", p.lr);
  get("beta1", p.beta1);
  get("beta2", p.beta2);
  get("eps", p.eps);
  std::string objective = "sum", optimizer = "adam";
  get("objective", objective);
  get("optimizer", optimizer);
  if (objective == "sum") p.objective = PathObjective::Sum;
  else if (objective == "sum_squares") p.objective = PathObjective::SumSquares;
  else if (objective == "minimax") p.objective = PathObjective::Minimax;
  else throw std::invalid_argument("objective: expected 'sum', 'sum_squares' or 'minimax', got '" + objective + "'");
  if (optimizer == "adam") p.optimizer = PathOptimizer::Adam;
  else if (optimizer == "lbfgs") p.optimizer = PathOptimizer::LBFGS;
  else throw std::invalid_argument("optimizer: expected 'adam' or 'lbfgs', got '" + optimizer + "'");
  if (o.contains("lbfgs")) p.lbfgs = lbfgs_params(o["lbfgs"].cast<py::dict>());
  return p;
}

template <typename T>
py::array_t<T> as_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  carray<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), sizeof(T) * v.size());
  return a;
}

template <typename T>
void bind_path(py::module_& m, const char* name) {
  using PB = PathBatch<T>;
  py::class_<PB>(m, name)
      .def(py::init([](py::object fun, carray<T> A, carray<T> B, const py::dict& params) {
             if (A.ndim() != 2 || B.ndim() != 2 || A.shape(0) != B.shape(0) ||
                 A.shape(1) != B.shape(1) || A.shape(0) < 1)
               throw std::invalid_argument("a, b: expected two arrays of shape (R, D)");
             const int64_t R = A.shape(0), D = A.shape(1);
             PathParams p = path_params(params);
             BatchFunction<T> f = make_function<T>(fun, D);
             const Landscape<T>* native =
                 py::isinstance<Landscape<T>>(fun) ? fun.cast<const Landscape<T>*>() : nullptr;
             py::gil_scoped_release release;
             auto* pb = new PB(std::move(f), D, R, A.data(), B.data(), p);
             if (native)
               pb->set_combination_function(
                   [native](const T* W, int64_t P, const T* V, int64_t Q, const int32_t* idx,
                            const T* coef, int nnz, T* loss, const T* proj, int64_t K,
                            T* pg) {
                     native->evaluate_combination(W, P, V, Q, idx, coef, nnz, loss, proj, K, pg);
                   });
             return pb;
           }),
           py::arg("fun"), py::arg("a"), py::arg("b"), py::arg("params"))
      .def(
          "optimize",
          [](PB& self, py::object callback) {
            std::function<bool(int)> cb;
            if (!callback.is_none())
              cb = [callback](int s) {
                py::gil_scoped_acquire gil;
                py::object r = callback(s);
                return r.is_none() || r.cast<bool>();
              };
            py::gil_scoped_release release;
            self.optimize(cb);
          },
          py::arg("callback") = py::none())
      .def(
          "points",
          [](const PB& self, carray<T> C, carray<double> t, std::vector<int64_t> rows) {
            const int64_t n = rows.empty() ? self.size() : int64_t(rows.size());
            for (int64_t r : rows)
              if (r < 0 || r >= self.size()) throw std::invalid_argument("rows: out of range");
            if (C.size() != n * self.n_modes() * self.dim())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            if (t.ndim() != 1) throw std::invalid_argument("t: expected a 1-D array");
            carray<T> W({n, int64_t(t.shape(0)), self.dim()});
            const T* cp = C.data();
            const double* tp = t.data();
            T* wp = W.mutable_data();
            const int64_t nt = t.shape(0);
            {
              py::gil_scoped_release release;
              self.points(cp, tp, nt, wp, rows);
            }
            return W;
          },
          py::arg("coeffs"), py::arg("t"), py::arg("rows") = std::vector<int64_t>{})
      .def(
          "objective",
          [](PB& self, carray<T> C, std::vector<int64_t> rows, bool grad) {
            const int64_t n = rows.empty() ? self.size() : int64_t(rows.size());
            for (int64_t r : rows)
              if (r < 0 || r >= self.size()) throw std::invalid_argument("rows: out of range");
            if (C.size() != n * self.n_modes() * self.dim())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            carray<T> value(n), energies({n, int64_t(self.n_points())});
            py::object g = py::none();
            T* gp = nullptr;
            if (grad) {
              carray<T> ga({n, int64_t(self.n_modes()), self.dim()});
              gp = ga.mutable_data();
              g = ga;
            }
            const T* cp = C.data();
            T* vp = value.mutable_data();
            T* ep = energies.mutable_data();
            {
              py::gil_scoped_release release;
              self.objective(cp, rows, vp, gp, ep);
            }
            return py::make_tuple(value, g, energies);
          },
          py::arg("coeffs"), py::arg("rows") = std::vector<int64_t>{}, py::arg("grad") = true)
      .def("use_generic_evaluation", [](PB& self) { self.set_combination_function({}); },
           "Evaluates the path points one by one through the batched energy (for tests).")
      .def(
          "set_coeffs",
          [](PB& self, py::array_t<T, py::array::c_style | py::array::forcecast> C) {
            if (size_t(C.size()) != self.coeffs.size())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            std::memcpy(self.coeffs.data(), C.data(), sizeof(T) * self.coeffs.size());
          },
          py::arg("coeffs"))
      .def_property_readonly("coeffs",
                             [](const PB& s) {
                               return as_array(s.coeffs, {s.size(), s.n_modes(), s.dim()});
                             })
      .def_property_readonly("best_coeffs",
                             [](const PB& s) {
                               return as_array(s.best_coeffs, {s.size(), s.n_modes(), s.dim()});
                             })
      .def_property_readonly("best_sum", [](const PB& s) { return as_array(s.best_sum, {s.size()}); })
      .def_property_readonly("history",
                             [](const PB& s) {
                               return as_array(s.history, {s.size(), s.params().steps + 1});
                             })
      .def_property_readonly("end_energy",
                             [](const PB& s) { return as_array(s.end_energy, {s.size(), 2}); })
      .def_property_readonly("t", [](const PB& s) { return as_array(s.t(), {s.n_points()}); })
      .def_readonly("energy_points", &PB::energy_points)
      .def_readonly("steps_done", &PB::steps_done);
}

}  // namespace

void bind_path(py::module_& m) {
  bind_path<float>(m, "PathBatchF32");
  bind_path<double>(m, "PathBatchF64");
}
