// A convolution of the channel concatenation [a, b] computed without building it: the
// weight split along its input channels, conv(a, W[:, :Ca]) + conv(b, W[:, Ca:]), the bias
// (when there is one) added once. The same FLOPs as the one convolution; what its backward
// keeps is a and b themselves, so a map that is kept anyway (a U-Net skip map, held as the
// next encoder block's input or checkpoint) is not stored a second time inside a
// concatenation. Each part is rounded to the working precision before the sum, so results
// differ from the one convolution's in the last bits.
#pragma once

#include <ATen/core/Tensor.h>

namespace dpunet::model {

// a: [N, Ca, H, W], b: [N, Cb, H, W], weight: [O, Ca + Cb, k, k], bias: [O] or undefined;
// stride 1, `padding` zeros on every side. Throws dpunet::Error naming the shapes when
// they do not fit together.
at::Tensor split_input_conv2d(const at::Tensor& a, const at::Tensor& b, const at::Tensor& weight,
                              const at::Tensor& bias, int64_t padding);

}  // namespace dpunet::model
