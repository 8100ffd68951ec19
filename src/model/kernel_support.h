// What the files calling dpunet's own CUDA kernels share: the layout the kernels expect
// (dense NHWC, 16-byte aligned for their vector loads) and, in a build with the kernels,
// the device facts they are launched by.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#endif

namespace dpunet::model {

inline bool aligned16(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// `t` as a dense, 16-byte aligned NHWC map: itself when it is one already.
inline at::Tensor nhwc_aligned(const at::Tensor& t) {
  at::Tensor out = t.contiguous(at::MemoryFormat::ChannelsLast);
  return aligned16(out) ? out : out.clone(at::MemoryFormat::ChannelsLast);
}

#ifdef DPUNET_WITH_CUDA_KERNELS
inline int multiprocessors() {
  return at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
}
#endif

}  // namespace dpunet::model
