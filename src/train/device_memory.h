// Peak GPU memory for the log line; CPU runs report none.
#pragma once

#include <c10/core/Device.h>

namespace dpunet::train {

// Peak bytes the caching allocator has held for tensors on `device` since the last call,
// in GiB (then starts a new peak: each log line's own); -1 on CPU.
double take_peak_gpu_memory_gib(const c10::Device& device);

}  // namespace dpunet::train
