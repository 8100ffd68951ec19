// The concatenation's backward split on the GPU (see concat_split_kernels.h): each thread
// moves one 16-byte vector at a time, over a grid-stride loop. Reads are in the
// gradient's order, so they coalesce; writes coalesce within each part's run of channels.
#include <cuda_runtime.h>

#include <algorithm>

#include "model/concat_split_kernels.h"

namespace dpunet::model::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerSm = 8;

template <typename Index>
__global__ void split_kernel(const uint4* __restrict__ grad, uint4* __restrict__ skip_grad, uint4* __restrict__ up_grad,
                             ConcatGeometry g, Index total) {
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index v = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; v < total; v += stride) {
    const SplitTarget t = split_target<Index>(g, v);
    const uint4 value = grad[v];
    (t.to_skip ? skip_grad : up_grad)[t.index] = value;
  }
}

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % kSplitVectorBytes == 0;
}

}  // namespace

const char* split_concat_grad(const void* grad, void* skip_grad, void* up_grad, const ConcatGeometry& g,
                              int multiprocessors, void* stream) {
  if (g.batch < 1 || g.height < 1 || g.width < 1 || g.skip_vectors < 1 || g.up_vectors < 1 || g.top < 0 || g.left < 0 ||
      g.top + g.height > g.skip_height || g.left + g.width > g.skip_width) {
    return "unsupported shape";
  }
  if (!aligned(grad) || !aligned(skip_grad) || !aligned(up_grad)) return "a map is not 16-byte aligned";
  const int64_t total = g.total_vectors();
  const int64_t wanted = (total + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(std::min<int64_t>(wanted, int64_t{multiprocessors} * kBlocksPerSm));
  auto st = static_cast<cudaStream_t>(stream);
  const auto* source = static_cast<const uint4*>(grad);
  auto* skip = static_cast<uint4*>(skip_grad);
  auto* up = static_cast<uint4*>(up_grad);
  // 32-bit indices while the loop's last step cannot overflow them.
  if (total + int64_t{blocks} * kThreads < (int64_t{1} << 32)) {
    split_kernel<uint32_t><<<blocks, kThreads, 0, st>>>(source, skip, up, g, static_cast<uint32_t>(total));
  } else {
    split_kernel<int64_t><<<blocks, kThreads, 0, st>>>(source, skip, up, g, total);
  }
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

}  // namespace dpunet::model::cuda
