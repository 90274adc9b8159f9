// The emulated losstopo._core_cuda (README.md in this folder): the bindings of
// python/bindings/cuda_module.cpp, unchanged, in a module that says what it is.
// PYBIND11_MODULE is redefined around the #include so that the bindings' module body
// becomes a function that the real module definition below calls after marking the
// module: EMULATED = True, a docstring that says so, and the emulation's counters.
#include "common.hpp"  // python/bindings: pybind11 and the shared binding helpers

#include <cuda_runtime.h>  // the stand-in (include/): emu::counters

static void losstopo_cuda_bindings(pybind11::module_& m);

PYBIND11_MODULE(_core_cuda, m) {
  m.attr("EMULATED") = true;
  losstopo_cuda_bindings(m);
  m.doc() =
      "losstopo CUDA backend, EMULATED on the CPU (tests/cuda_emulation): cuda/landscape.cu "
      "compiled as C++ against stand-in CUDA and cuBLAS headers; for tests only";
  m.def(
      "_emulation_counters",
      [] {
        const emu::Counters& c = emu::counters;
        pybind11::dict d;
        d["bytes_to_device"] = c.to_device.load();
        d["bytes_to_host"] = c.to_host.load();
        d["bytes_on_device"] = c.on_device.load();
        d["launches"] = c.launches.load();
        d["gemms"] = c.gemms.load();
        d["allocations"] = c.allocations.load();
        return d;
      },
      "The emulation's running totals: bytes copied host to device, device to host and "
      "within the device; kernel launches; cuBLAS products; live device allocations.");
}

#undef PYBIND11_MODULE
#define PYBIND11_MODULE(name, variable) \
  static void losstopo_cuda_bindings(pybind11::module_& variable)
#include "cuda_module.cpp"
