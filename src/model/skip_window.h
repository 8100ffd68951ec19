// The window of a U-Net skip map that meets the upsampled map below it: the whole map with
// same padding, its centre crop with valid padding. Its backward gives the whole skip
// map's gradient in the skip map's own memory format, zero outside the window, where
// ATen's narrow gives an NCHW one whatever the layout: on a GPU an NHWC gradient would
// then be transposed into it and added to the skip's other (NHWC) gradient across layouts.
#pragma once

#include <ATen/core/Tensor.h>

namespace dpunet::model {

// skip: [N, C, H, W]; the window [N, C, height, width] from row `top`, column `left`. The
// skip map itself when the window is all of it. Throws dpunet::Error naming the sizes
// when the window does not lie inside the map.
at::Tensor skip_window(const at::Tensor& skip, int64_t top, int64_t left, int64_t height, int64_t width);

// Zeroes the rows and columns of a 4-D map outside that window, in any layout.
void zero_outside_window(const at::Tensor& map, int64_t top, int64_t left, int64_t height, int64_t width);

}  // namespace dpunet::model
