// What a caller does with a layer's result, so that a layer whose backward does not read
// its own output can leave that output unwritten when nobody reads it either.
#pragma once

namespace dpunet::model {

enum class OutputUse {
  kRead,
  // The result only roots a backward pass: its values are never read. The case of a
  // checkpointed block's output during its recomputation (model/activation_checkpoint.h),
  // whose nested backward starts from the gradient the outer graph hands it.
  kGradientOnly,
};

}  // namespace dpunet::model
