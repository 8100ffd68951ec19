// 2x2 max pooling with stride 2 (floor) for the U-Net's Down blocks. Where dpunet's
// kernels apply (model/max_pool_kernels.h), an autograd function that keeps only the
// input for backward, not ATen's int64 indices; elsewhere ATen's max_pool2d. On the GPU
// the values and gradients are ATen's bit for bit (but for windows of nothing but -inf;
// see the kernels' header).
#pragma once

#include <ATen/core/Tensor.h>

namespace dpunet::model {

at::Tensor max_pool_2x2(const at::Tensor& x, bool allow_kernels = true);

// Whether max_pool_2x2 takes the kernels for x: a build with dpunet's CUDA kernels, an
// sm_80+ GPU, a dense 16-byte aligned NHWC map of float, bfloat16 or half, at least 2x2,
// whose channel bytes are a multiple of 16.
bool max_pool_kernels_apply(const at::Tensor& x);

// Always the function without indices, on the GPU or, for CPU maps, the kernels' host
// reference: for tests. x must meet the conditions above but the device's.
at::Tensor max_pool_2x2_without_indices(const at::Tensor& x);

}  // namespace dpunet::model
