// Model weights by name, as a PyTorch state_dict: from a training checkpoint or a
// safetensors file, into any module; every missing, unexpected or mis-shaped name is
// listed in one error.
#pragma once

#include <torch/nn/module.h>

#include <string>

#include "checkpoint/safetensors.h"

namespace dpunet::checkpoint {

// Parameters then buffers, with their state_dict names.
NamedTensors module_state(const torch::nn::Module& module);
// Copies `state` into `module` (dtype converted); throws naming `source`, the U-Nets
// both describe where they differ, `hint` (what to do about it) and the differences when
// names or shapes do not match exactly.
void load_state(torch::nn::Module& module, const NamedTensors& state, const std::string& source,
                const std::string& hint = "");

}  // namespace dpunet::checkpoint
