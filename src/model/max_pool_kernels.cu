// 2x2 max pooling without indices on the GPU (see max_pool_kernels.h). Each thread takes
// one 16-byte vector of channels of one output pixel at a time: forward loads the
// window's four vectors and stores one; backward loads them and the output gradient's
// vector and stores four, the gradient where the maximum was and zero elsewhere. Values
// are compared in float and moved as they are.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "model/max_pool_kernels.h"

namespace dpunet::model::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerSm = 8;
constexpr int kVectorBytes = static_cast<int>(kPoolVectorBytes);

__device__ inline float to_float(float v) {
  return v;
}
__device__ inline float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ inline float to_float(__half v) {
  return __half2float(v);
}
// The window's four vectors at position p.
template <typename T>
__device__ inline void load_window(const uint4* x, const PoolGeometry& g, const PoolPosition& p, uint4 (&w)[4]) {
#pragma unroll
  for (int corner = 0; corner < 4; ++corner) w[corner] = x[window_vector(g, p, corner, kVectorBytes / sizeof(T))];
}

template <typename T, typename Index>
__global__ void forward_kernel(const uint4* __restrict__ x, uint4* __restrict__ y, PoolGeometry g, Index vectors,
                               Index total) {
  constexpr int kPerVector = kVectorBytes / sizeof(T);
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index v = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; v < total; v += stride) {
    uint4 w[4];
    load_window<T>(x, g, pool_position(g, v, vectors), w);
    const T* a = reinterpret_cast<const T*>(&w[0]);
    const T* b = reinterpret_cast<const T*>(&w[1]);
    const T* c = reinterpret_cast<const T*>(&w[2]);
    const T* d = reinterpret_cast<const T*>(&w[3]);
    uint4 out;
    T* o = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int i = 0; i < kPerVector; ++i) {
      const int best = window_argmax(to_float(a[i]), to_float(b[i]), to_float(c[i]), to_float(d[i]));
      // A select, not w[best]: a register array indexed at run time would live in memory.
      o[i] = best == 0 ? a[i] : best == 1 ? b[i] : best == 2 ? c[i] : d[i];
    }
    y[v] = out;
  }
}

template <typename T, typename Index>
__global__ void backward_kernel(const uint4* __restrict__ x, const uint4* __restrict__ dy, uint4* __restrict__ dx,
                                PoolGeometry g, Index vectors, Index total) {
  constexpr int kPerVector = kVectorBytes / sizeof(T);
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index v = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; v < total; v += stride) {
    const PoolPosition p = pool_position(g, v, vectors);
    uint4 w[4];
    load_window<T>(x, g, p, w);
    const uint4 grad_vector = dy[v];
    const T* grad = reinterpret_cast<const T*>(&grad_vector);
    uint4 out[4] = {};  // zero bits: +0 in every type
#pragma unroll
    for (int i = 0; i < kPerVector; ++i) {
      const int best =
          window_argmax(to_float(reinterpret_cast<const T*>(&w[0])[i]), to_float(reinterpret_cast<const T*>(&w[1])[i]),
                        to_float(reinterpret_cast<const T*>(&w[2])[i]), to_float(reinterpret_cast<const T*>(&w[3])[i]));
#pragma unroll
      for (int corner = 0; corner < 4; ++corner) {  // unrolled, so out stays in registers
        if (best == corner) reinterpret_cast<T*>(&out[corner])[i] = grad[i];
      }
    }
#pragma unroll
    for (int corner = 0; corner < 4; ++corner) {
      dx[window_vector(g, p, corner, kPerVector)] = out[corner];
    }
  }
}

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % kVectorBytes == 0;
}

int element_bytes(PoolType type) {
  return type == PoolType::kFloat ? 4 : 2;
}

const char* check(const PoolGeometry& g, PoolType type) {
  if (g.batch < 1 || g.height < 2 || g.width < 2 || g.channels < 1 ||
      g.channels * element_bytes(type) % kVectorBytes != 0) {
    return "unsupported shape";
  }
  return nullptr;
}

const char* launched() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

// Runs `kernel<T, Index>` over every output vector, Index 32-bit while the grid-stride
// loop's last step cannot overflow it.
template <typename Launch>
const char* launch(PoolType type, const PoolGeometry& g, int multiprocessors, Launch&& run) {
  const int64_t vectors = g.channels * element_bytes(type) / kVectorBytes;
  const int64_t total = g.batch * g.out_height() * g.out_width() * vectors;
  const int blocks =
      static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{multiprocessors} * kBlocksPerSm));
  if (total + int64_t{blocks} * kThreads < (int64_t{1} << 32)) {
    run(blocks, static_cast<uint32_t>(vectors), static_cast<uint32_t>(total));
  } else {
    run(blocks, vectors, total);
  }
  return launched();
}

template <typename T>
const char* forward_typed(const void* x, void* y, const PoolGeometry& g, PoolType type, int multiprocessors,
                          cudaStream_t stream) {
  return launch(type, g, multiprocessors, [&](int blocks, auto vectors, auto total) {
    forward_kernel<T, decltype(total)>
        <<<blocks, kThreads, 0, stream>>>(static_cast<const uint4*>(x), static_cast<uint4*>(y), g, vectors, total);
  });
}

template <typename T>
const char* backward_typed(const void* x, const void* dy, void* dx, const PoolGeometry& g, PoolType type,
                           int multiprocessors, cudaStream_t stream) {
  return launch(type, g, multiprocessors, [&](int blocks, auto vectors, auto total) {
    backward_kernel<T, decltype(total)><<<blocks, kThreads, 0, stream>>>(
        static_cast<const uint4*>(x), static_cast<const uint4*>(dy), static_cast<uint4*>(dx), g, vectors, total);
  });
}

}  // namespace

const char* max_pool_forward(PoolType type, const void* x, void* y, const PoolGeometry& g, int multiprocessors,
                             void* stream) {
  if (const char* error = check(g, type)) return error;
  if (!aligned(x) || !aligned(y)) return "a map is not 16-byte aligned";
  auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case PoolType::kFloat: return forward_typed<float>(x, y, g, type, multiprocessors, st);
    case PoolType::kBFloat16: return forward_typed<__nv_bfloat16>(x, y, g, type, multiprocessors, st);
    case PoolType::kHalf: return forward_typed<__half>(x, y, g, type, multiprocessors, st);
  }
  return "unknown map type";
}

const char* max_pool_backward(PoolType type, const void* x, const void* dy, void* dx, const PoolGeometry& g,
                              int multiprocessors, void* stream) {
  if (const char* error = check(g, type)) return error;
  if (!aligned(x) || !aligned(dy) || !aligned(dx)) return "a map is not 16-byte aligned";
  auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case PoolType::kFloat: return backward_typed<float>(x, dy, dx, g, type, multiprocessors, st);
    case PoolType::kBFloat16: return backward_typed<__nv_bfloat16>(x, dy, dx, g, type, multiprocessors, st);
    case PoolType::kHalf: return backward_typed<__half>(x, dy, dx, g, type, multiprocessors, st);
  }
  return "unknown map type";
}

const char* kernel_code_for_current_device() {
  cudaFuncAttributes attributes{};
  const cudaError_t error = cudaFuncGetAttributes(&attributes, forward_kernel<float, uint32_t>);
  if (error == cudaSuccess) return nullptr;
  cudaGetLastError();  // not sticky: clear it, so that the next CUDA call does not report it
  return cudaGetErrorString(error);
}

}  // namespace dpunet::model::cuda
