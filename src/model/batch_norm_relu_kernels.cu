// Fused BatchNorm + ReLU on NHWC maps (see batch_norm_relu_kernels.h).
//
// Each thread owns 8 adjacent channels (one 16-byte load of a 16-bit map) of a strided
// set of rows, so the reductions need no atomics: a block sums its rows' partials in
// shared memory and writes one partial per channel; a second kernel adds the blocks'
// partials in double. Statistics are sums shifted by the first row's values, so a mean
// far from zero does not cancel the variance away. Backward recomputes the ReLU mask from
// x with the same arithmetic forward used, so forward's output need not be kept. The
// split of the work and the formulas are in batch_norm_relu_math.h, which the kernels'
// host reference shares.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "model/batch_norm_relu_kernels.h"
#include "model/batch_norm_relu_math.h"

namespace dpunet::model::cuda {
namespace {

constexpr int kThreads = kNormThreads;
constexpr int kVector = kNormVector;

__device__ inline void load8(const float* p, float (&v)[kVector]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
// The 16-bit map types, 8 values per 16-byte load: how a pair converts to and from float.
template <typename T>
struct Pair16;
template <>
struct Pair16<__nv_bfloat16> {
  using type = __nv_bfloat162;
  __device__ static float2 to_float2(type v) { return __bfloat1622float2(v); }
  __device__ static type from_floats(float a, float b) { return __floats2bfloat162_rn(a, b); }
};
template <>
struct Pair16<__half> {
  using type = __half2;
  __device__ static float2 to_float2(type v) { return __half22float2(v); }
  __device__ static type from_floats(float a, float b) { return __floats2half2_rn(a, b); }
};

template <typename T>
__device__ inline void load8(const T* p, float (&v)[kVector]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const auto* pairs = reinterpret_cast<const typename Pair16<T>::type*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = Pair16<T>::to_float2(pairs[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}

__device__ inline void store8(float* p, const float (&v)[kVector]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
template <typename T>
__device__ inline void store8(T* p, const float (&v)[kVector]) {
  uint4 raw;
  auto* pairs = reinterpret_cast<typename Pair16<T>::type*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) pairs[i] = Pair16<T>::from_floats(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = raw;
}

size_t partial_shared_bytes(const ReductionSplit& s) {
  return 2 * sizeof(float) * static_cast<size_t>(s.rows_per_pass) * s.groups * kVector;
}

// Sums a block's per-thread pairs (first, second) per channel and writes them as this
// block's partial: out[(block * 2 + 0) * channels + c] and out[(block * 2 + 1) * ...].
__device__ void write_block_partial(const float (&first)[kVector], const float (&second)[kVector], int groups,
                                    int rows_per_pass, int channels, float* out) {
  extern __shared__ float shared[];
  float* first_sh = shared;
  float* second_sh = shared + rows_per_pass * channels;
  const int g = threadIdx.x % groups, r = threadIdx.x / groups;
  if (r < rows_per_pass) {
#pragma unroll
    for (int k = 0; k < kVector; ++k) {
      first_sh[r * channels + g * kVector + k] = first[k];
      second_sh[r * channels + g * kVector + k] = second[k];
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    float a = 0, b = 0;
    for (int i = 0; i < rows_per_pass; ++i) {
      a += first_sh[i * channels + c];
      b += second_sh[i * channels + c];
    }
    out[(blockIdx.x * 2) * channels + c] = a;
    out[(blockIdx.x * 2 + 1) * channels + c] = b;
  }
}

// Shifted sums of x and x^2 per channel over this block's rows; block 0 also records the
// shift (the first row) after the partials.
template <typename T>
__global__ void __launch_bounds__(kThreads) statistics_partial(const T* x, int64_t rows, int channels, int groups,
                                                               int rows_per_pass, int64_t chunk, float* partial) {
  const int g = threadIdx.x % groups, r = threadIdx.x / groups;
  float shift[kVector], sum[kVector] = {}, squares[kVector] = {};
  load8(x + g * kVector, shift);
  if (r < rows_per_pass) {
    const int64_t begin = blockIdx.x * chunk;
    const int64_t end = min(rows, begin + chunk);
#pragma unroll 4
    for (int64_t row = begin + r; row < end; row += rows_per_pass) {
      float v[kVector];
      load8(x + row * channels + g * kVector, v);
#pragma unroll
      for (int k = 0; k < kVector; ++k) {
        const float d = v[k] - shift[k];
        sum[k] += d;
        squares[k] = fmaf(d, d, squares[k]);
      }
    }
    if (blockIdx.x == 0 && r == 0) {
      float* shift_out = partial + static_cast<int64_t>(gridDim.x) * 2 * channels;
#pragma unroll
      for (int k = 0; k < kVector; ++k) shift_out[g * kVector + k] = shift[k];
    }
  }
  write_block_partial(sum, squares, groups, rows_per_pass, channels, partial);
}

// Adds the blocks' partials of one channel (blockIdx.x) in double; returns them in
// thread 0.
__device__ void sum_partials(const float* partial, int blocks, int channels, double& first, double& second) {
  __shared__ double first_sh[kThreads], second_sh[kThreads];
  const int c = blockIdx.x;
  double a = 0, b = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) {
    a += partial[(i * 2) * channels + c];
    b += partial[(i * 2 + 1) * channels + c];
  }
  first_sh[threadIdx.x] = a;
  second_sh[threadIdx.x] = b;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      first_sh[threadIdx.x] += first_sh[threadIdx.x + half];
      second_sh[threadIdx.x] += second_sh[threadIdx.x + half];
    }
    __syncthreads();
  }
  first = first_sh[0];
  second = second_sh[0];
}

__global__ void __launch_bounds__(kThreads)
    statistics_finalize(const float* partial, int blocks, int64_t rows, int channels, double momentum, double eps,
                        float* running_mean, float* running_var, float* save_mean, float* save_invstd) {
  double sum, squares;
  sum_partials(partial, blocks, channels, sum, squares);
  if (threadIdx.x != 0) return;
  const int c = blockIdx.x;
  const double shift = partial[static_cast<int64_t>(blocks) * 2 * channels + c];
  const ChannelStatistics s = channel_statistics(sum, squares, shift, static_cast<double>(rows), eps, momentum,
                                                 running_mean[c], running_var[c]);
  save_mean[c] = s.save_mean;
  save_invstd[c] = s.save_invstd;
  running_mean[c] = s.running_mean;
  running_var[c] = s.running_var;
}

// The apply kernels' grids make each thread's stride a multiple of the channel count
// (apply_blocks), so a thread meets the same 8 channels at every step.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_apply(const T* x, T* y, int64_t vectors, int channels, const float* weight, const float* bias,
                  const float* mean, const float* invstd) {
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int c0 = static_cast<int>((first * kVector) % channels);
  Affine a[kVector];
#pragma unroll
  for (int k = 0; k < kVector; ++k) a[k] = affine(mean[c0 + k], invstd[c0 + k], weight[c0 + k], bias[c0 + k]);
  for (int64_t v = first; v < vectors; v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float values[kVector];
    load8(x + v * kVector, values);
#pragma unroll
    for (int k = 0; k < kVector; ++k) {
      const float z = pre_relu(values[k], a[k]);
      values[k] = relu_passes(z) ? z : 0.f;
    }
    store8(y + v * kVector, values);
  }
}

// Per channel over this block's rows: sum of g and of g * xhat, where g is dy where the
// ReLU passed and 0 elsewhere.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_partial(const T* x, const T* dy, int64_t rows, int channels, int groups, int rows_per_pass, int64_t chunk,
                     const float* weight, const float* bias, const float* mean, const float* invstd, float* partial) {
  const int g = threadIdx.x % groups, r = threadIdx.x / groups;
  float sum[kVector] = {}, dot[kVector] = {};
  if (r < rows_per_pass) {
    Affine a[kVector];
    float m[kVector], s[kVector];
#pragma unroll
    for (int k = 0; k < kVector; ++k) {
      const int c = g * kVector + k;
      a[k] = affine(mean[c], invstd[c], weight[c], bias[c]);
      m[k] = mean[c];
      s[k] = invstd[c];
    }
    const int64_t begin = blockIdx.x * chunk;
    const int64_t end = min(rows, begin + chunk);
#pragma unroll 2
    for (int64_t row = begin + r; row < end; row += rows_per_pass) {
      float xv[kVector], gv[kVector];
      load8(x + row * channels + g * kVector, xv);
      load8(dy + row * channels + g * kVector, gv);
#pragma unroll
      for (int k = 0; k < kVector; ++k) {
        const float grad = masked_gradient(xv[k], gv[k], a[k]);
        sum[k] += grad;
        dot[k] = fmaf(grad, normalised(xv[k], m[k], s[k]), dot[k]);
      }
    }
  }
  write_block_partial(sum, dot, groups, rows_per_pass, channels, partial);
}

__global__ void __launch_bounds__(kThreads)
    backward_finalize(const float* partial, int blocks, int channels, float* dweight, float* dbias) {
  double sum, dot;
  sum_partials(partial, blocks, channels, sum, dot);
  if (threadIdx.x != 0) return;
  dbias[blockIdx.x] = static_cast<float>(sum);
  dweight[blockIdx.x] = static_cast<float>(dot);
}

// dx from the sums backward_finalize wrote (input_gradient).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_apply(const T* x, const T* dy, T* dx, int64_t vectors, int64_t rows, int channels, const float* weight,
                   const float* bias, const float* mean, const float* invstd, const float* dweight,
                   const float* dbias) {
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int c0 = static_cast<int>((first * kVector) % channels);
  const float inv_rows = 1.0f / static_cast<float>(rows);
  Affine a[kVector];
  BackwardGains b[kVector];
#pragma unroll
  for (int k = 0; k < kVector; ++k) {
    const int c = c0 + k;
    a[k] = affine(mean[c], invstd[c], weight[c], bias[c]);
    b[k] = backward_gains(mean[c], invstd[c], weight[c], dweight[c], dbias[c], inv_rows);
  }
  for (int64_t v = first; v < vectors; v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float xv[kVector], gv[kVector];
    load8(x + v * kVector, xv);
    load8(dy + v * kVector, gv);
#pragma unroll
    for (int k = 0; k < kVector; ++k) gv[k] = input_gradient(xv[k], gv[k], a[k], b[k]);
    store8(dx + v * kVector, gv);
  }
}

const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

template <typename T>
const char* apply_typed(const T* x, T* y, int64_t rows, int64_t channels, const float* weight, const float* bias,
                        const float* save_mean, const float* save_invstd, int multiprocessors, cudaStream_t stream) {
  const int64_t vectors = rows * channels / kVector;
  forward_apply<T><<<apply_blocks(vectors, channels, multiprocessors), kThreads, 0, stream>>>(
      x, y, vectors, static_cast<int>(channels), weight, bias, save_mean, save_invstd);
  return last_error();
}

template <typename T>
const char* forward_typed(const T* x, T* y, int64_t rows, int64_t channels, const float* weight, const float* bias,
                          float* running_mean, float* running_var, double momentum, double eps, float* save_mean,
                          float* save_invstd, float* workspace, int multiprocessors, cudaStream_t stream) {
  const ReductionSplit s = reduction_split(rows, channels, multiprocessors);
  const int c = static_cast<int>(channels);
  statistics_partial<T><<<s.blocks, kThreads, partial_shared_bytes(s), stream>>>(x, rows, c, s.groups, s.rows_per_pass,
                                                                                 s.chunk, workspace);
  statistics_finalize<<<c, kThreads, 0, stream>>>(workspace, s.blocks, rows, c, momentum, eps, running_mean,
                                                  running_var, save_mean, save_invstd);
  return apply_typed(x, y, rows, channels, weight, bias, save_mean, save_invstd, multiprocessors, stream);
}

template <typename T>
const char* backward_typed(const T* x, const T* dy, T* dx, int64_t rows, int64_t channels, const float* weight,
                           const float* bias, const float* save_mean, const float* save_invstd, float* dweight,
                           float* dbias, float* workspace, int multiprocessors, cudaStream_t stream) {
  const ReductionSplit s = reduction_split(rows, channels, multiprocessors);
  const int c = static_cast<int>(channels);
  backward_partial<T><<<s.blocks, kThreads, partial_shared_bytes(s), stream>>>(
      x, dy, rows, c, s.groups, s.rows_per_pass, s.chunk, weight, bias, save_mean, save_invstd, workspace);
  backward_finalize<<<c, kThreads, 0, stream>>>(workspace, s.blocks, c, dweight, dbias);
  const int64_t vectors = rows * channels / kVector;
  backward_apply<T><<<apply_blocks(vectors, channels, multiprocessors), kThreads, 0, stream>>>(
      x, dy, dx, vectors, rows, c, weight, bias, save_mean, save_invstd, dweight, dbias);
  return last_error();
}

}  // namespace

int64_t batch_norm_relu_workspace_bytes(int64_t rows, int64_t channels, int multiprocessors) {
  const ReductionSplit s = reduction_split(rows, channels, multiprocessors);
  return (int64_t{s.blocks} * 2 + 1) * channels * static_cast<int64_t>(sizeof(float));
}

const char* batch_norm_relu_forward(MapType type, const void* x, void* y, int64_t rows, int64_t channels,
                                    const float* weight, const float* bias, float* running_mean, float* running_var,
                                    double momentum, double eps, float* save_mean, float* save_invstd, void* workspace,
                                    int multiprocessors, void* stream) {
  if (channels % kVector != 0 || channels > kMaxChannels || rows < 1) return "unsupported shape";
  auto* ws = static_cast<float*>(workspace);
  auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case MapType::kFloat:
      return forward_typed(static_cast<const float*>(x), static_cast<float*>(y), rows, channels, weight, bias,
                           running_mean, running_var, momentum, eps, save_mean, save_invstd, ws, multiprocessors, st);
    case MapType::kBFloat16:
      return forward_typed(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), rows, channels, weight,
                           bias, running_mean, running_var, momentum, eps, save_mean, save_invstd, ws, multiprocessors,
                           st);
    case MapType::kHalf:
      return forward_typed(static_cast<const __half*>(x), static_cast<__half*>(y), rows, channels, weight, bias,
                           running_mean, running_var, momentum, eps, save_mean, save_invstd, ws, multiprocessors, st);
  }
  return "unknown map type";
}

const char* batch_norm_relu_apply(MapType type, const void* x, void* y, int64_t rows, int64_t channels,
                                  const float* weight, const float* bias, const float* save_mean,
                                  const float* save_invstd, int multiprocessors, void* stream) {
  if (channels % kVector != 0 || channels > kMaxChannels || rows < 1) return "unsupported shape";
  auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case MapType::kFloat:
      return apply_typed(static_cast<const float*>(x), static_cast<float*>(y), rows, channels, weight, bias, save_mean,
                         save_invstd, multiprocessors, st);
    case MapType::kBFloat16:
      return apply_typed(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), rows, channels, weight,
                         bias, save_mean, save_invstd, multiprocessors, st);
    case MapType::kHalf:
      return apply_typed(static_cast<const __half*>(x), static_cast<__half*>(y), rows, channels, weight, bias,
                         save_mean, save_invstd, multiprocessors, st);
  }
  return "unknown map type";
}

const char* batch_norm_relu_backward(MapType type, const void* x, const void* dy, void* dx, int64_t rows,
                                     int64_t channels, const float* weight, const float* bias, const float* save_mean,
                                     const float* save_invstd, float* dweight, float* dbias, void* workspace,
                                     int multiprocessors, void* stream) {
  if (channels % kVector != 0 || channels > kMaxChannels || rows < 1) return "unsupported shape";
  auto* ws = static_cast<float*>(workspace);
  auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case MapType::kFloat:
      return backward_typed(static_cast<const float*>(x), static_cast<const float*>(dy), static_cast<float*>(dx), rows,
                            channels, weight, bias, save_mean, save_invstd, dweight, dbias, ws, multiprocessors, st);
    case MapType::kBFloat16:
      return backward_typed(static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(dy),
                            static_cast<__nv_bfloat16*>(dx), rows, channels, weight, bias, save_mean, save_invstd,
                            dweight, dbias, ws, multiprocessors, st);
    case MapType::kHalf:
      return backward_typed(static_cast<const __half*>(x), static_cast<const __half*>(dy), static_cast<__half*>(dx),
                            rows, channels, weight, bias, save_mean, save_invstd, dweight, dbias, ws, multiprocessors,
                            st);
  }
  return "unknown map type";
}

}  // namespace dpunet::model::cuda
