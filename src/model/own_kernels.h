// Whether dpunet's own CUDA kernels (fused BatchNorm+ReLU, max pooling, the
// concatenation's backward) are in this build, and whether they run on a device: they
// are built for sm_80 and newer (DPUNET_CUDA_ARCHITECTURES).
#pragma once

#include <c10/core/Device.h>

namespace dpunet::model {

bool own_kernels_built();
bool own_kernels_run_on(const c10::Device& device);

}  // namespace dpunet::model
