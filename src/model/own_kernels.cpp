// own_kernels_built / own_kernels_run_on: compiled with DPUNET_WITH_CUDA_KERNELS in a
// build that has the kernels.
#include "model/own_kernels.h"

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <array>
#include <atomic>
#include <iostream>

#include "model/max_pool_kernels.h"
#endif

namespace dpunet::model {

bool own_kernels_built() {
#ifdef DPUNET_WITH_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

#ifdef DPUNET_WITH_CUDA_KERNELS
namespace {

// Whether the kernels run on GPU `index`: sm_80 or newer, and code for it in this build.
// Said once per GPU when not, as the layers then take ATen's kernels.
bool runnable_on(c10::DeviceIndex index) {
  const cudaDeviceProp* properties = at::cuda::getDeviceProperties(index);
  if (properties->major < 8) return false;  // below what they are written for: expected, not worth a word
  const c10::cuda::CUDAGuard guard(index);
  if (const char* reason = cuda::kernel_code_for_current_device()) {
    std::cerr << "dpunet: warning: this build has no code of its own kernels for GPU " << static_cast<int>(index)
              << ", " << properties->name << " (sm_" << properties->major << properties->minor << "; " << reason
              << "); ATen's kernels run instead. Rebuild with DPUNET_CUDA_ARCHITECTURES naming it." << std::endl;
    return false;
  }
  return true;
}

}  // namespace
#endif

bool own_kernels_run_on(const c10::Device& device) {
#ifdef DPUNET_WITH_CUDA_KERNELS
  if (!device.is_cuda()) return false;
  // Asked by every layer in every forward: the answer is kept per GPU (0 unknown, 1 yes,
  // 2 no). Two threads asking at once both probe, which is harmless.
  static_assert(sizeof(c10::DeviceIndex) == 1, "one answer per possible device index");
  static std::array<std::atomic<int>, 256> known{};
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  std::atomic<int>& answer = known[static_cast<uint8_t>(index)];
  int value = answer.load(std::memory_order_acquire);
  if (value == 0) {
    value = runnable_on(index) ? 1 : 2;
    answer.store(value, std::memory_order_release);
  }
  return value == 1;
#else
  (void)device;
  return false;
#endif
}

}  // namespace dpunet::model
