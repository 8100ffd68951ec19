// Whether a module's weights are numbers: a NaN or infinite weight makes every output
// NaN, so neither a checkpoint read nor one about to be written may hold one.
#pragma once

#include <torch/nn/module.h>

#include <string>

namespace dpunet::model {

// The floating-point parameters and buffers of `model` holding NaN or inf, one
// "\n  name" each (the first 12, then how many more); empty when every value is finite.
// Reads each back to the host.
std::string non_finite_tensors(const torch::nn::Module& model);

// How many of those tensors there are, as a float scalar on the tensors' device: no
// host synchronisation, for an all-reduce that stops every rank alike.
torch::Tensor count_non_finite_tensors(const torch::nn::Module& model);

}  // namespace dpunet::model
