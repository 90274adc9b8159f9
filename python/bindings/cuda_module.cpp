// pybind11 bindings of the CUDA engine (the module losstopo._core_cuda, built only
// with the CUDA backend). CudaLandscape is registered as a subclass of the Objective
// classes of losstopo._core, so every consumer there (training, minimize, paths)
// takes it as it takes the CPU engine, with its capabilities.
#include "common.hpp"
#include "losstopo/cuda_landscape.hpp"

using namespace losstopo_py;

namespace {

template <typename T>
void bind(py::module_& m) {
  using CL = CudaLandscape<T>;
  py::class_<CL, Objective<T>>(m, class_name<T>("CudaLandscape").c_str())
      .def(py::init([](const std::vector<int>& sizes, const std::vector<std::string>& hidden,
                       const std::string& output, bool bias, const std::string& loss,
                       carray<T> X, std::optional<carray<int32_t>> y,
                       std::optional<carray<T>> targets, int device, bool tf32, int64_t chunk,
                       bool drop_zero_columns) {
             MLPSpec s = make_spec(sizes, hidden, output, bias, loss);
             check_data_shapes<T>(s, X, y, targets);
             CudaOptions options;
             options.device = device;
             options.tf32 = tf32;
             options.chunk = chunk;
             options.drop_zero_columns = drop_zero_columns;
             return new CL(s, X.data(), X.shape(0), y ? y->data() : nullptr,
                           targets ? targets->data() : nullptr, options);
           }),
           py::arg("sizes"), py::arg("hidden"), py::arg("output"), py::arg("bias"),
           py::arg("loss"), py::arg("X"), py::arg("y") = py::none(),
           py::arg("targets") = py::none(), py::arg("device") = 0, py::arg("tf32") = false,
           py::arg("chunk") = 0, py::arg("drop_zero_columns") = true)
      .def_property_readonly("kept_columns", &CL::kept_columns,
                             "The input columns the passes read: all but those zero in every "
                             "sample (unless made with drop_zero_columns=False).");
}

}  // namespace

PYBIND11_MODULE(_core_cuda, m) {
  m.doc() = "losstopo CUDA backend";
  py::module_::import("losstopo._core");  // the Objective base classes
  m.def("device_available", &cuda_device_available);
  bind<float>(m);
  bind<double>(m);
}
