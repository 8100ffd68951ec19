// own_kernels_built / own_kernels_run_on: compiled with DPUNET_WITH_CUDA_KERNELS in a
// build that has the kernels.
#include "model/own_kernels.h"

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#endif

namespace dpunet::model {

bool own_kernels_built() {
#ifdef DPUNET_WITH_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool own_kernels_run_on(const c10::Device& device) {
#ifdef DPUNET_WITH_CUDA_KERNELS
  return device.is_cuda() && at::cuda::getDeviceProperties(device.index())->major >= 8;
#else
  (void)device;
  return false;
#endif
}

}  // namespace dpunet::model
