// What a caller does with a layer's result, so that a layer can skip work nobody needs:
// an output its own backward does not read, or a map recomputed in backward to save memory
// that would be needed at once anyway.
#pragma once

namespace dpunet::model {

enum class OutputUse {
  kRead,
  // The result only roots a backward pass that follows at once: its values are never
  // read, and what the layer keeps for that backward is needed at once too (recomputing
  // it later would save no memory). The case of a checkpointed block's output during its
  // recomputation (model/activation_checkpoint.h), whose nested backward starts from the
  // gradient the outer graph hands it.
  kGradientOnly,
};

}  // namespace dpunet::model
