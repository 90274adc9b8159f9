// pybind11 bindings of the CUDA landscape (the module losstopo._core_cuda, built
// only with the CUDA backend). Same evaluate() contract as the CPU classes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine_methods.hpp"
#include "losstopo/cuda_landscape.hpp"

namespace py = pybind11;
using namespace losstopo;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

template <typename T>
void bind(py::module_& m, const char* name) {
  using CL = CudaLandscape<T>;
  py::class_<CL>(m, name)
      .def(py::init([](const std::vector<int>& sizes, const std::vector<std::string>& hidden,
                       const std::string& output, bool bias, const std::string& loss,
                       carray<T> X, std::optional<carray<int32_t>> y,
                       std::optional<carray<T>> targets, int device, bool tf32, int64_t chunk) {
             MLPSpec s = losstopo_py::make_spec(sizes, hidden, output, bias, loss);
             if (X.ndim() != 2 || X.shape(1) != s.sizes.front())
               throw std::invalid_argument("X: expected shape (n, sizes[0])");
             return new CL(s, X.data(), X.shape(0), y ? y->data() : nullptr,
                           targets ? targets->data() : nullptr, device, tf32, chunk);
           }),
           py::arg("sizes"), py::arg("hidden"), py::arg("output"), py::arg("bias"),
           py::arg("loss"), py::arg("X"), py::arg("y") = py::none(),
           py::arg("targets") = py::none(), py::arg("device") = 0, py::arg("tf32") = false,
           py::arg("chunk") = 0)
      .def_property_readonly("num_params", &CL::num_params)
      .def_property_readonly("num_samples", &CL::num_samples)
      .def("evaluate", &losstopo_py::engine_evaluate<T, CL>, py::arg("theta"),
           py::arg("grad") = false, py::arg("accuracy") = false, py::arg("samples") = py::none())
      .def("evaluate_each", &losstopo_py::engine_evaluate_each<T, CL>, py::arg("theta"),
           py::arg("samples"), py::arg("grad") = true);
}

}  // namespace

PYBIND11_MODULE(_core_cuda, m) {
  m.doc() = "losstopo CUDA backend";
  m.def("device_available", &cuda_device_available);
  bind<float>(m, "CudaLandscapeF32");
  bind<double>(m, "CudaLandscapeF64");
}
