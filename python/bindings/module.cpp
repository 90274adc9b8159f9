// pybind11 bindings of the C++ core. Argument checks that guard memory safety live
// here; friendlier validation is done by the Python layer before calling in.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "losstopo/landscape.hpp"
#include "losstopo/mlp.hpp"
#include "engine_methods.hpp"

namespace py = pybind11;
using namespace losstopo;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

template <typename T>
void bind_landscape(py::module_& m, const char* name) {
  using LS = Landscape<T>;
  py::class_<LS>(m, name)
      .def(py::init([](const std::vector<int>& sizes, const std::vector<std::string>& hidden,
                       const std::string& output, bool bias, const std::string& loss,
                       carray<T> X, std::optional<carray<int32_t>> y,
                       std::optional<carray<T>> targets, int threads, int64_t chunk) {
             MLPSpec s = losstopo_py::make_spec(sizes, hidden, output, bias, loss);
             if (X.ndim() != 2 || X.shape(1) != s.sizes.front())
               throw std::invalid_argument("X: expected shape (n, " +
                                           std::to_string(s.sizes.front()) + ")");
             const int64_t n = X.shape(0);
             if (y && (y->ndim() != 1 || y->shape(0) != n))
               throw std::invalid_argument("y: expected shape (n,)");
             if (targets && (targets->ndim() != 2 || targets->shape(0) != n ||
                             targets->shape(1) != s.sizes.back()))
               throw std::invalid_argument("targets: expected shape (n, sizes[-1])");
             EngineOptions opt;
             opt.threads = threads;
             opt.chunk = chunk;
             return new LS(std::move(s), X.data(), n, y ? y->data() : nullptr,
                           targets ? targets->data() : nullptr, opt);
           }),
           py::arg("sizes"), py::arg("hidden"), py::arg("output"), py::arg("bias"),
           py::arg("loss"), py::arg("X"), py::arg("y") = py::none(),
           py::arg("targets") = py::none(), py::arg("threads") = 0, py::arg("chunk") = 0)
      .def_property_readonly("num_params", &LS::num_params)
      .def_property_readonly("num_samples", &LS::num_samples)
      .def_property(
          "threads", [](const LS& self) { return self.options().threads; },
          [](LS& self, int t) {
            EngineOptions o = self.options();
            o.threads = t;
            self.set_options(o);
          })
      .def_property(
          "chunk", [](const LS& self) { return self.options().chunk; },
          [](LS& self, int64_t c) {
            EngineOptions o = self.options();
            o.chunk = c;
            self.set_options(o);
          })
      .def("chunk_size", &LS::chunk_size, py::arg("P"))
      .def("evaluate", &losstopo_py::engine_evaluate<T, LS>, py::arg("theta"),
           py::arg("grad") = false, py::arg("accuracy") = false, py::arg("samples") = py::none())
      .def("evaluate_each", &losstopo_py::engine_evaluate_each<T, LS>, py::arg("theta"),
           py::arg("samples"), py::arg("grad") = true)
      .def(
          "line_values",
          [](const LS& self, carray<T> x, carray<T> d, carray<int64_t> lines, carray<T> u) {
            const int64_t D = self.num_params();
            if (x.ndim() != 2 || x.shape(1) != D || d.ndim() != 2 || d.shape(0) != x.shape(0) ||
                d.shape(1) != D)
              throw std::invalid_argument("x, d: expected two arrays of shape (P, D)");
            if (lines.ndim() != 1 || u.ndim() != 1 || lines.shape(0) != u.shape(0))
              throw std::invalid_argument("lines, u: expected two 1-D arrays of one length");
            LineCache<T> cache;
            carray<T> out(u.shape(0));
            bool ok;
            {
              py::gil_scoped_release release;
              ok = self.prepare_lines(x.data(), d.data(), x.shape(0), cache);
              if (ok) self.line_values(cache, lines.data(), u.data(), u.shape(0), out.mutable_data());
            }
            if (!ok) throw std::invalid_argument("lines: the products exceed the line cache budget");
            return out;
          },
          py::arg("x"), py::arg("d"), py::arg("lines"), py::arg("u"));
}

}  // namespace

void bind_optim(py::module_& m);
void bind_path(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "losstopo compiled core";
  bind_optim(m);
  bind_path(m);
  bind_landscape<float>(m, "LandscapeF32");
  bind_landscape<double>(m, "LandscapeF64");
  m.def(
      "num_params",
      [](const std::vector<int>& sizes, bool bias) {
        MLPSpec s;
        s.sizes = sizes;
        s.hidden.assign(sizes.size() > 1 ? sizes.size() - 2 : 0, Activation::Identity);
        s.bias = bias;
        s.loss = Loss::MSE;
        s.validate();
        return s.num_params();
      },
      py::arg("sizes"), py::arg("bias"));
}
