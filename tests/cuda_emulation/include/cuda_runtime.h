// Stand-in for the CUDA runtime that cuda/landscape.cu uses, for the CPU emulation
// (tests/cuda_emulation/README.md): "device" memory is host memory from malloc,
// filled with 0xff bytes (NaN for floating-point values) as it is not zeroed on a
// GPU either, and registered, so that every copy, memset, cuBLAS call and kernel
// launch can check that its device pointers lie in device memory and its host
// pointers do not. Kernels run through emu::launch, one (block, thread) after
// another. Errors are reported as the runtime reports them (cudaError_t values,
// cudaGetLastError for launches), with a message saying what the emulation caught.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
// The emulated thread's coordinates, set by emu::launch.
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};

namespace emu {

// What the tests can read back (the emulated module's _emulation_counters()).
struct Counters {
  std::atomic<long long> to_device{0}, to_host{0}, on_device{0};  // bytes copied
  std::atomic<long long> launches{0}, gemms{0}, allocations{0};
};
inline Counters counters;

// The live device allocations: start address -> bytes.
inline std::mutex memory_mutex;
inline std::map<std::uintptr_t, size_t> allocations;

// Whether [p, p + bytes) lies inside one device allocation (bytes 0: p in one).
inline bool on_device(const void* p, size_t bytes = 1) {
  if (!p) return false;
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
  std::lock_guard<std::mutex> lock(memory_mutex);
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return false;
  --it;
  return a + std::max<size_t>(bytes, 1) <= it->first + it->second;
}

// The last error and what caused it (cudaGetLastError() returns and clears it).
inline thread_local cudaError_t last_error = cudaSuccess;
inline thread_local std::string message;
inline cudaError_t fail(cudaError_t e, const std::string& what) {
  message = "emulation: " + what;
  std::fprintf(stderr, "%s\n", message.c_str());
  return e;
}

// A kernel argument that is a pointer must be null or point into device memory.
template <typename A>
bool device_argument(const A& a) {
  if constexpr (std::is_pointer_v<std::decay_t<A>>)
    return a == nullptr || on_device(static_cast<const void*>(a));
  else
    return true;
}

// k<<<grid, block>>>(args...) becomes launch(grid, block, call, args...), call
// running the kernel on the arguments (evaluated once, as for a launch): every
// thread of every block in turn, each to its end. 1-D launches only.
template <typename Call, typename... A>
void launch(dim3 grid, dim3 block, Call&& call, A&&... args) {
  if (grid.y != 1 || grid.z != 1 || block.y != 1 || block.z != 1) {
    last_error = fail(cudaErrorInvalidConfiguration, "only 1-D launches are emulated");
    return;
  }
  if (grid.x == 0 || grid.x > 2147483647u || block.x == 0 || block.x > 1024) {
    last_error = fail(cudaErrorInvalidConfiguration,
                      "launch with grid " + std::to_string(grid.x) + ", block " +
                          std::to_string(block.x));
    return;
  }
  if (!(device_argument(args) && ...)) {
    last_error = fail(cudaErrorInvalidDevicePointer,
                      "kernel launched with a pointer argument outside device memory");
    return;
  }
  ++counters.launches;
  gridDim = grid;
  blockDim = block;
  for (unsigned b = 0; b < grid.x; ++b)
    for (unsigned t = 0; t < block.x; ++t) {
      blockIdx = dim3(b);
      threadIdx = dim3(t);
      call(args...);
    }
}

}  // namespace emu

inline const char* cudaGetErrorString(cudaError_t) { return emu::message.c_str(); }
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::last_error;
  emu::last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : emu::fail(cudaErrorInvalidValue, "one device (0) emulated");
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline size_t emu_free_bytes = size_t(64) << 30;
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = emu_free_bytes;
  *total_bytes = size_t(80) << 30;
  return cudaSuccess;
}

template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  void* q = std::malloc(std::max<size_t>(bytes, 1));
  *p = static_cast<T*>(q);
  if (!q) return emu::fail(cudaErrorMemoryAllocation, "out of memory");
  std::memset(q, 0xff, bytes);  // not zeroed: NaN for floating point
  std::lock_guard<std::mutex> lock(emu::memory_mutex);
  emu::allocations[reinterpret_cast<std::uintptr_t>(q)] = std::max<size_t>(bytes, 1);
  ++emu::counters.allocations;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(emu::memory_mutex);
  if (emu::allocations.erase(reinterpret_cast<std::uintptr_t>(p)) != 1)
    return emu::fail(cudaErrorInvalidDevicePointer, "cudaFree of a pointer not from cudaMalloc");
  std::free(p);
  --emu::counters.allocations;
  return cudaSuccess;
}

namespace emu {
// Checks the two ends of a copy of `bytes` (or of a 2-D extent) for its kind.
inline cudaError_t check_copy(void* dst, size_t dst_bytes, const void* src, size_t src_bytes,
                              cudaMemcpyKind kind, const char* what) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyHostToHost) return fail(cudaErrorInvalidValue, "host-to-host copy");
  if (dst_dev ? !on_device(dst, dst_bytes) : on_device(dst))
    return fail(cudaErrorInvalidValue, std::string(what) + ": destination " +
                                           (dst_dev ? "outside device memory" : "in device memory"));
  if (src_dev ? !on_device(src, src_bytes) : on_device(src))
    return fail(cudaErrorInvalidValue, std::string(what) + ": source " +
                                           (src_dev ? "outside device memory" : "in device memory"));
  return cudaSuccess;
}
inline void count_copy(size_t bytes, cudaMemcpyKind kind) {
  (kind == cudaMemcpyHostToDevice   ? counters.to_device
   : kind == cudaMemcpyDeviceToHost ? counters.to_host
                                    : counters.on_device) += (long long)bytes;
}
}  // namespace emu

inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = emu::check_copy(dst, bytes, src, bytes, kind, "cudaMemcpy")) return e;
  const char *d = static_cast<const char*>(dst), *s = static_cast<const char*>(src);
  if (d < s + bytes && s < d + bytes)
    return emu::fail(cudaErrorInvalidValue, "cudaMemcpy between overlapping ranges");
  std::memcpy(dst, src, bytes);
  emu::count_copy(bytes, kind);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch,
                                size_t width, size_t height, cudaMemcpyKind kind) {
  if (dpitch < width || spitch < width)
    return emu::fail(cudaErrorInvalidValue, "cudaMemcpy2D: pitch below width");
  if (width == 0 || height == 0) return cudaSuccess;
  if (cudaError_t e = emu::check_copy(dst, (height - 1) * dpitch + width, src,
                                      (height - 1) * spitch + width, kind, "cudaMemcpy2D"))
    return e;
  for (size_t r = 0; r < height; ++r)
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                 width);
  emu::count_copy(width * height, kind);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!emu::on_device(dst, bytes))
    return emu::fail(cudaErrorInvalidValue, "cudaMemset outside device memory");
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

// Device intrinsics: products and sums rounded one at a time. (The emulation is
// built with -ffp-contract=off, so no other expression is fused either.)
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __dsub_rn(double a, double b) { return a - b; }
