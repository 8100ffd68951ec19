// Versions and capabilities this binary was built with, for logs and benchmark records.
#pragma once

#include <string>
#include <vector>

namespace dpunet {

struct BuildInfo {
  std::string dpunet_version;
  std::string torch_version;
  bool torch_cuda = false;   // LibTorch was built with CUDA
  int cuda_devices = 0;      // GPUs visible now (0 on a CPU machine)
  std::string nccl_version;  // empty when the NCCL path is not compiled in, or NCCL did not answer
  bool nccl_compiled = false;
  std::string cuda_runtime, cudnn;  // LibTorch's; empty without CUDA
  std::string mpi_library;          // MPI_Get_library_version's first line
  std::string hdf5_version;
  std::vector<std::string> gpus;  // "NAME, compute capability X.Y, N GiB" per visible GPU
};

BuildInfo build_info();
// dpunet's own version alone: cheap, no device or library queries.
std::string dpunet_version();

}  // namespace dpunet
