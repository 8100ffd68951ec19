// The decoder's concatenation along channels of a window of the skip map and the
// upsampled map: [skip[:, :, top:top+H, left:left+W], up], where H x W is up's size (the
// whole skip with same padding, its centre crop with valid padding). Forward is ATen's
// cat. Where the split kernel applies (below), backward splits the gradient into both
// inputs' gradients in one vectorised pass (model/concat_split_kernels.h) instead of
// handing out channel-sliced views that every consumer copies. Either way the results are
// the same bits: backward only moves values.
#pragma once

#include <ATen/core/Tensor.h>

namespace dpunet::model {

at::Tensor concat_skip(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left,
                       bool allow_split_kernel = true);

// Whether concat_skip takes the split kernel for these maps: a build with dpunet's CUDA
// kernels, both maps NHWC on the same sm_80+ GPU, 4-D, of one floating type, and each
// one's channel bytes a multiple of 16.
bool concat_split_kernel_applies(const at::Tensor& skip, const at::Tensor& up);

// Always the split backward, on the GPU or, for CPU maps, its host reference: for tests.
// The maps must meet the conditions above but the device's.
at::Tensor concat_skip_split_backward(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left);

}  // namespace dpunet::model
