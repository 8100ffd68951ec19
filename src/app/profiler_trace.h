// Records a profiler trace (host operators and device kernels) of some work and saves it
// in the Chrome trace format that PyTorch's profiler writes, so the two compare directly.
#pragma once

#include <functional>
#include <string>

namespace dpunet::app {

void record_profiler_trace(const std::string& path, const std::function<void()>& work);

}  // namespace dpunet::app
