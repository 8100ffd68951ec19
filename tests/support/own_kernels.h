// Whether dpunet's own CUDA kernels can run here, for the [gpu] tests that need them.
#pragma once

#include <torch/cuda.h>
#include "support/catch.h"

#include "model/own_kernels.h"

namespace dpunet::test {

// An sm_80+ GPU and a build with the kernels; false, with a warning (the test then
// skips), otherwise.
inline bool own_kernels_runnable() {
  if (!torch::cuda::is_available() || !model::own_kernels_run_on(c10::Device(c10::kCUDA, 0))) {
    DPUNET_SKIP("needs an sm_80 or newer GPU and a build with dpunet's kernels");
    return false;
  }
  return true;
}

}  // namespace dpunet::test
