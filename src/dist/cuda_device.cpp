// CUDA device selection, compiled to an error when LibTorch has no CUDA.
#include "dist/cuda_device.h"

#include "common/error.h"

#ifdef DPUNET_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace dpunet::dist {

void set_current_cuda_device(int index) {
#ifdef DPUNET_TORCH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
  DPUNET_FAIL("cannot select GPU ", index, ": this dpunet was built against a LibTorch without CUDA");
#endif
}

}  // namespace dpunet::dist
