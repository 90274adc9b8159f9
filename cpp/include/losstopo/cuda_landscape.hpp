// The batched MLP landscape on an NVIDIA GPU (cuBLAS for every matrix product,
// small kernels for activations, losses, reductions and SGD updates). This header
// needs no CUDA toolkit: the implementation is behind a pointer and lives in the
// losstopo_cuda library, built when CMake finds nvcc and cuBLAS (LOSSTOPO_CUDA=AUTO|ON|OFF).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "losstopo/mlp.hpp"
#include "losstopo/objective.hpp"

namespace losstopo {

// Whether a CUDA device can be used by this build.
bool cuda_device_available();

// How the CUDA engine runs (beside the CPU engine's EngineOptions).
struct CudaOptions {
  int device = 0;      // the CUDA device ordinal
  bool tf32 = false;   // let cuBLAS use TF32 tensor cores for float products
  int64_t chunk = 0;   // samples per chunk; 0: chosen from the network and P
  // Leave out the input columns that are zero in every sample (as the CPU engine's
  // EngineOptions::drop_zero_columns).
  bool drop_zero_columns = true;
  // Throws std::invalid_argument naming the first setting out of range.
  void validate() const {
    if (device < 0)
      throw std::invalid_argument("device: must be a device ordinal >= 0, got " +
                                  std::to_string(device));
    if (chunk < 0)
      throw std::invalid_argument("chunk: must be non-negative, got " + std::to_string(chunk));
  }
};

namespace reduced {
template <typename T, typename Engine>
class Reduced;  // the engine on the inputs' nonzero columns (cpp/src/reduced_inputs.hpp)
}  // namespace reduced

template <typename T>
class CudaLandscape final : public Objective<T> {
 public:
  // The same data contract as Landscape<T>; the dataset is copied to the options'
  // device once.
  CudaLandscape(MLPSpec spec, const T* X, int64_t n, const int32_t* labels, const T* targets,
                CudaOptions options = {});
  ~CudaLandscape() override;
  CudaLandscape(const CudaLandscape&) = delete;
  CudaLandscape& operator=(const CudaLandscape&) = delete;

  int64_t num_params() const override;
  int64_t num_samples() const override;
  bool classifier() const override;
  // The input columns the passes read: sizes[0] less those zero in every sample.
  int kept_columns() const;
  // Host arrays in and out, as Landscape<T>::evaluate. Calls on one landscape are
  // serialized (they share its device buffers).
  void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* accuracy,
                const int64_t* samples, int64_t n_samples) const override;
  // One batched pass: vector p on its own B samples samples[p*B .. p*B+B).
  void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B, T* loss,
                     T* grad) const override;

  // Prepared lines: prepare() keeps x, d and the first-layer products X x1^T and
  // X d1^T (2 x n x P x h1 numbers) on the device, within a memory budget (8 GiB and
  // half the free device memory); values() uploads only the line indices and the
  // steps. The evaluator refers to this landscape, which must outlive it.
  std::unique_ptr<LineEvaluator<T>> line_evaluator() const override;

  // Basis combinations: the points are formed on the device from V, index and coef
  // (`points` is only checked, not read), the first layer from the Q basis products.
  bool offers_combinations() const override { return true; }
  void evaluate_combination(const T* points, int64_t P, const T* V, int64_t Q,
                            const int32_t* index, const T* coef, int nnz, T* loss,
                            const T* proj = nullptr, int64_t K = 0, T* proj_grad = nullptr,
                            const int64_t* samples = nullptr, int64_t n_samples = 0,
                            T* accuracy = nullptr) const override;

  // Whole SGD epochs on the device: the active runs' parameters (and velocities) and
  // minibatch orders go up once per epoch and come back at its end; per step only the
  // runs' minibatch losses come back (a run whose loss is not finite stops there),
  // and the update runs on the device with the generic loop's arithmetic.
  bool run_sgd_epoch(T* theta, T* velocity, int64_t R, uint8_t* active, const SGDParams& p,
                     const int64_t* orders) const override;

  // Exact Hessian-vector products (Objective::hessian_vector) by the R-operator on the
  // device, with the network maths the CPU engine uses; one point per direction on
  // the device (a single point is repeated).
  bool offers_hessian_vector() const override { return true; }
  void hessian_vector(const T* theta, int64_t Pt, const T* v, int64_t P, T* hv,
                      T* loss = nullptr, T* grad = nullptr, const int64_t* samples = nullptr,
                      int64_t n_samples = 0) const override;

 private:
  struct Impl;
  class Lines;  // the prepared-lines evaluator (cuda/landscape.cu)
  std::unique_ptr<Impl> impl_;
  // With zero input columns dropped: the engine on the other columns, which every
  // call is handed to (impl_ is then null).
  std::unique_ptr<reduced::Reduced<T, CudaLandscape<T>>> reduced_;
};

}  // namespace losstopo
