// Peak memory of a stretch of code on one device. CPU: the process's resident high-water
// mark (VmHWM) after trimming the heap and resetting the mark; CUDA: the caching
// allocator's peak allocated bytes.
#pragma once

#include <cstdint>
#include <string>

namespace dpunet::app {

// For CPU measurements: large allocations go to the system and back at once (a fixed
// mmap threshold instead of glibc's adaptive one), so the resident size follows the live
// tensors exactly.
void follow_live_tensors_in_rss();

class MemoryProbe {
 public:
  explicit MemoryProbe(std::string device);  // "cpu" or "cuda[:N]"
  // Starts measuring from the current use. On the CPU, where resident memory is what is
  // measured, freed heap pages are handed back first; on a GPU allocated bytes are
  // measured, which the allocator's cache does not count.
  void start();
  // Peak bytes in use since start() (or restart_peak()), minus the use at start().
  int64_t peak_above_baseline() const;
  // Measures the peak anew from now, against start()'s baseline: after warm-up steps, so
  // that one-off work (cuDNN autotuning's workspaces) is left out, as PyTorch's figures do.
  void restart_peak();
  // CUDA: hands the caching allocator's free blocks back to the driver, so that one
  // attempt's cached blocks do not decide whether the next, larger one fits.
  void release_cached() const;
  // CUDA: the device memory the driver has free now; 0 on the CPU.
  int64_t free_device_bytes() const;

 private:
  std::string device_;
  int64_t baseline_ = 0;
};

}  // namespace dpunet::app
