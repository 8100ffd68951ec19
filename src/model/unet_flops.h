// Floating-point operations of one U-Net forward pass, counted from the layer shapes
// (2 x multiply-accumulates of every convolution and transposed convolution; norms,
// activations and pooling are left out, as MFU conventions do). Training costs about
// 3x forward (backward = 2x forward).
#pragma once

#include <cstdint>

#include "model/unet_options.h"

namespace dpunet::model {

// Per sample, for a square input of side `input_size`; throws for sizes the model cannot
// take.
double unet_forward_flops(const UnetOptions& options, int64_t input_size);

}  // namespace dpunet::model
