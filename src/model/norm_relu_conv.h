// conv(relu(batch_norm(x))) keeping only x for backward. The convolution needs its input,
// the BatchNorm+ReLU output, to compute its weight gradient; instead of holding that map
// from forward to backward (as large as x), backward computes it again from x with the
// statistics forward used: one normalise pass, bit for bit the same map. x itself is kept
// anyway, for BatchNorm's backward. Activation checkpointing turns this on in every
// DoubleConv (model/unet.h): the cheapest recomputation there is.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

namespace dpunet::model {

// Values, gradients and running statistics are those of
// conv.forward(batch_norm_relu(x, bn, allow_fused)), which also runs instead wherever
// nothing would be saved (grad mode off, BatchNorm in eval mode) or the convolution is not
// a plain zero-padded one.
torch::Tensor norm_relu_conv(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, torch::nn::Conv2dImpl& conv,
                             bool allow_fused = true);

}  // namespace dpunet::model
