// take_peak_gpu_memory_gib.
#include "train/device_memory.h"

#ifdef DPUNET_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace dpunet::train {

double take_peak_gpu_memory_gib(const c10::Device& device) {
#ifdef DPUNET_TORCH_CUDA
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    const auto stats = alloc::getDeviceStats(device.index());
    const auto peak = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
    alloc::resetPeakStats(device.index());
    return static_cast<double>(peak) / (1024.0 * 1024.0 * 1024.0);
  }
#endif
  (void)device;
  return -1;
}

}  // namespace dpunet::train
