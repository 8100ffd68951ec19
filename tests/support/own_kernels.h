// Whether dpunet's own CUDA kernels can run here, for the [gpu] tests that need them.
#pragma once

#include <torch/cuda.h>
#include <catch2/catch.hpp>

#include "model/batch_norm_relu.h"

namespace dpunet::test {

// A GPU and a build with the kernels; false, with a warning (the test then skips),
// otherwise.
inline bool own_kernels_runnable() {
  if (!torch::cuda::is_available() || !model::fused_batch_norm_relu_built()) {
    WARN("skipped: needs a GPU and a build with dpunet's kernels");
    return false;
  }
  return true;
}

}  // namespace dpunet::test
