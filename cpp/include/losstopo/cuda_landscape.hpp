// The batched MLP landscape on an NVIDIA GPU (cuBLAS for every matrix product,
// small kernels for activations, losses and reductions). This header needs no CUDA
// toolkit: the implementation is behind a pointer and lives in the losstopo_cuda
// library, built when CMake finds nvcc and cuBLAS (LOSSTOPO_CUDA=AUTO|ON|OFF).
#pragma once

#include <cstdint>
#include <memory>

#include "losstopo/mlp.hpp"
#include "losstopo/objective.hpp"

namespace losstopo {

// Whether a CUDA device can be used by this build.
bool cuda_device_available();

template <typename T>
class CudaLandscape final : public Objective<T> {
 public:
  // The same data contract as Landscape<T>; the dataset is copied to `device` once.
  // tf32: let cuBLAS use TF32 tensor cores for float products.
  CudaLandscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels, const T* targets,
                int device = 0, bool tf32 = false, int64_t chunk = 0);
  ~CudaLandscape() override;
  CudaLandscape(const CudaLandscape&) = delete;
  CudaLandscape& operator=(const CudaLandscape&) = delete;

  int64_t num_params() const override;
  int64_t num_samples() const override;
  bool classifier() const override;
  // Host arrays in and out, as Landscape<T>::evaluate.
  void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* accuracy,
                const int64_t* samples, int64_t n_samples) const override;
  void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B, T* loss,
                     T* grad) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace losstopo
