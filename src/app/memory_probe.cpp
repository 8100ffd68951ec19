// MemoryProbe: /proc-based on CPU, caching-allocator statistics on CUDA (any CUDA
// LibTorch, with or without the NCCL path).
#include "app/memory_probe.h"

#include <malloc.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

#ifdef DPUNET_TORCH_CUDA
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace dpunet::app {
namespace {

// A "VmRSS:" / "VmHWM:" line of /proc/self/status, in bytes.
int64_t proc_status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream fields(line.substr(key.size()));
      int64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  DPUNET_FAIL("cannot read ", key, " from /proc/self/status");
}

// Sets the process's resident high-water mark (VmHWM) to its current RSS.
void reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.close();
  DPUNET_CHECK(!clear_refs.fail(), "cannot reset the peak RSS through /proc/self/clear_refs");
}

bool is_cuda(const std::string& device) {
  return device.rfind("cuda", 0) == 0;
}

#ifdef DPUNET_TORCH_CUDA
// StatType::AGGREGATE (all pools) is index 0; the enum's namespace moved between torch releases.
constexpr size_t kAggregate = 0;

c10::DeviceIndex cuda_index(const std::string& device) {
  const auto colon = device.find(':');
  return colon == std::string::npos ? c10::cuda::current_device()
                                    : static_cast<c10::DeviceIndex>(std::stoi(device.substr(colon + 1)));
}
#endif

}  // namespace

void follow_live_tensors_in_rss() {
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

MemoryProbe::MemoryProbe(std::string device) : device_(std::move(device)) {
#ifndef DPUNET_TORCH_CUDA
  DPUNET_CHECK(!is_cuda(device_), "memory probe for ", device_, ": this build has no CUDA path");
#endif
}

void MemoryProbe::start() {
  if (is_cuda(device_)) {
#ifdef DPUNET_TORCH_CUDA
    namespace alloc = c10::cuda::CUDACachingAllocator;
    // The caching allocator sets up a device's statistics on its first allocation there,
    // and rejects statistics calls for that device until then.
    (void)at::empty({1}, at::TensorOptions().device(c10::Device(c10::kCUDA, cuda_index(device_))));
    c10::cuda::device_synchronize();
    alloc::resetPeakStats(cuda_index(device_));
    const auto stats = alloc::getDeviceStats(cuda_index(device_));
    baseline_ = stats.allocated_bytes[kAggregate].current;
#endif
    return;
  }
  // Hand freed heap pages back, or they stay resident and hide the step's real growth.
  malloc_trim(0);
  reset_peak_rss();
  baseline_ = proc_status_bytes("VmRSS:");
}

void MemoryProbe::restart_peak() {
  if (is_cuda(device_)) {
#ifdef DPUNET_TORCH_CUDA
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(device_));
#endif
    return;
  }
  malloc_trim(0);  // as start() does: freed warm-up pages would count towards the new peak
  reset_peak_rss();
}

void MemoryProbe::release_cached() const {
#ifdef DPUNET_TORCH_CUDA
  if (is_cuda(device_)) {
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
#endif
}

int64_t MemoryProbe::free_device_bytes() const {
#ifdef DPUNET_TORCH_CUDA
  if (is_cuda(device_)) {
    const c10::cuda::CUDAGuard guard(cuda_index(device_));
    size_t free = 0, total = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return static_cast<int64_t>(free);
  }
#endif
  return 0;
}

int64_t MemoryProbe::peak_above_baseline() const {
  if (is_cuda(device_)) {
#ifdef DPUNET_TORCH_CUDA
    namespace alloc = c10::cuda::CUDACachingAllocator;
    c10::cuda::device_synchronize();
    const auto stats = alloc::getDeviceStats(cuda_index(device_));
    return stats.allocated_bytes[kAggregate].peak - baseline_;
#endif
  }
  return proc_status_bytes("VmHWM:") - baseline_;
}

}  // namespace dpunet::app
