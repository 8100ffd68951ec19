// Reads versions from LibTorch, MPI, HDF5 and, when compiled in, NCCL and CUDA.
#include "common/build_info.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <hdf5.h>
#include <mpi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#ifdef DPUNET_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#ifdef DPUNET_WITH_NCCL
#include <nccl.h>
#endif

#ifndef DPUNET_VERSION
#define DPUNET_VERSION "unknown"
#endif

namespace dpunet {

std::string dpunet_version() {
  return DPUNET_VERSION;
}

BuildInfo build_info() {
  BuildInfo info;
  info.dpunet_version = dpunet_version();
  info.torch_version = TORCH_VERSION;
#ifdef DPUNET_TORCH_CUDA
  info.torch_cuda = true;
#endif
  info.cuda_devices = static_cast<int>(torch::cuda::device_count());
#ifdef DPUNET_WITH_NCCL
  info.nccl_compiled = true;
  int version = 0;
  if (ncclGetVersion(&version) == ncclSuccess) {
    // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
    info.nccl_version = std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
                        std::to_string(version % 100);
  }
#endif
  // Allowed before MPI_Init (MPI 3).
  char library[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  if (MPI_Get_library_version(library, &length) == MPI_SUCCESS) {
    info.mpi_library = std::string(library, static_cast<size_t>(length));
    info.mpi_library = info.mpi_library.substr(0, info.mpi_library.find_first_of("\n,"));
  }
  unsigned major = 0, minor = 0, release = 0;
  if (H5get_libversion(&major, &minor, &release) >= 0) {
    info.hdf5_version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
  }
  if (info.torch_cuda) {
    const auto& hooks = at::detail::getCUDAHooks();
    // major * 1000 + minor * 10 (CUDA), major * 10000 + minor * 100 + patch (cuDNN 9).
    const long cudart = hooks.versionCUDART();
    if (cudart > 0) info.cuda_runtime = std::to_string(cudart / 1000) + "." + std::to_string(cudart % 1000 / 10);
    const long cudnn = hooks.versionCuDNN();
    if (cudnn > 0) {
      info.cudnn =
          std::to_string(cudnn / 10000) + "." + std::to_string(cudnn % 10000 / 100) + "." + std::to_string(cudnn % 100);
    }
  }
#ifdef DPUNET_TORCH_CUDA
  for (int i = 0; i < info.cuda_devices; ++i) {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(i);
    info.gpus.push_back(std::string(p->name) + ", compute capability " + std::to_string(p->major) + "." +
                        std::to_string(p->minor) + ", " +
                        std::to_string(static_cast<long long>(p->totalGlobalMem >> 30)) + " GiB");
  }
#endif
  return info;
}

}  // namespace dpunet
