// CUDA device selection, compiled to an error when LibTorch has no CUDA.
#include "dist/cuda_device.h"

#include <torch/cuda.h>

#include "common/error.h"

#ifdef DPUNET_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace dpunet::dist {

bool built_with_cuda() {
#ifdef DPUNET_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

int usable_gpu_count() {
#ifdef DPUNET_TORCH_CUDA
  return static_cast<int>(torch::cuda::device_count());
#else
  return 0;
#endif
}

std::string gpu_name(int index) {
#ifdef DPUNET_TORCH_CUDA
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, index) != cudaSuccess) return "";
  return properties.name;
#else
  (void)index;
  return "";
#endif
}

void synchronize_current_stream(int index) {
#ifdef DPUNET_TORCH_CUDA
  c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(index)).synchronize();
#else
  (void)index;
#endif
}

void set_current_cuda_device(int index) {
#ifdef DPUNET_TORCH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
  DPUNET_FAIL("cannot select GPU ", index, ": this dpunet was built against a LibTorch without CUDA");
#endif
}

}  // namespace dpunet::dist
