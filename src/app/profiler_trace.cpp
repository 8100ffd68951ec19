// record_profiler_trace through LibTorch's Kineto profiler.
#include "app/profiler_trace.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <filesystem>
#include <set>

#include "common/error.h"

namespace dpunet::app {

void record_profiler_trace(const std::string& path, const std::function<void()>& work) {
  namespace impl = torch::profiler::impl;
  // With every allocation and free ("[memory]" events carrying the total allocated), so a
  // trace also shows where a step's memory peaks (bench/trace_memory.py).
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO, /*report_input_shapes=*/false,
                                    /*profile_memory=*/true);
  const std::set<impl::ActivityType> activities = {impl::ActivityType::CPU, impl::ActivityType::CUDA};
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  try {
    work();
  } catch (...) {
    torch::autograd::profiler::disableProfiler();
    throw;
  }
  const auto result = torch::autograd::profiler::disableProfiler();
  DPUNET_CHECK(result != nullptr, "the profiler returned no result for ", path);
  result->save(path);
  // The profiler reports a failed save (a rename that lost a race) only in its log.
  std::error_code ec;
  DPUNET_CHECK(std::filesystem::is_regular_file(path, ec), "the profiler did not write ", path);
}

}  // namespace dpunet::app
