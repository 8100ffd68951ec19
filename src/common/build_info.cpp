// Reads versions from LibTorch and, when compiled in, NCCL.
#include "common/build_info.h"

#include <torch/cuda.h>
#include <torch/version.h>

#ifdef DPUNET_WITH_NCCL
#include <nccl.h>
#endif

#ifndef DPUNET_VERSION
#define DPUNET_VERSION "unknown"
#endif

namespace dpunet {

BuildInfo build_info() {
  BuildInfo info;
  info.dpunet_version = DPUNET_VERSION;
  info.torch_version = TORCH_VERSION;
#ifdef DPUNET_TORCH_CUDA
  info.torch_cuda = true;
#endif
  info.cuda_devices = static_cast<int>(torch::cuda::device_count());
#ifdef DPUNET_WITH_NCCL
  int version = 0;
  if (ncclGetVersion(&version) == ncclSuccess) {
    // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
    info.nccl_version = std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
                        std::to_string(version % 100);
  }
#endif
  return info;
}

}  // namespace dpunet
