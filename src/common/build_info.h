// Versions and capabilities this binary was built with, for logs and benchmark records.
#pragma once

#include <string>

namespace dpunet {

struct BuildInfo {
  std::string dpunet_version;
  std::string torch_version;
  bool torch_cuda = false;   // LibTorch was built with CUDA
  int cuda_devices = 0;      // GPUs visible now (0 on a CPU machine)
  std::string nccl_version;  // empty when the NCCL path is not compiled in
};

BuildInfo build_info();

}  // namespace dpunet
