// Activation checkpointing for any torch::nn::Module: run a block without keeping its
// intermediate activations and recompute them in backward, trading compute for memory.
#pragma once

#include <functional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace dpunet::model {

// Computes a block's outputs from its inputs using `block`'s parameters and buffers.
using BlockFunction = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

// Returns run(inputs), keeping only `inputs` for backward. In backward the block is run
// again under the forward's RNG and autocast state, and gradients flow to the inputs and to
// every parameter of `block`. Buffers changed by the recomputation (BatchNorm running
// statistics, step counters) are restored, so they are updated once per forward.
// Without grad mode, or when nothing requires grad, this is a plain call.
std::vector<torch::Tensor> checkpoint(torch::nn::Module& block, const BlockFunction& run,
                                      const std::vector<torch::Tensor>& inputs);

// One tensor in, one out: the common case of a module whose forward takes a tensor. The
// recomputation holds its own reference to the module: backward may come after the
// caller's holder is gone.
template <typename ModuleImpl>
torch::Tensor checkpoint(torch::nn::ModuleHolder<ModuleImpl>& block, const torch::Tensor& x) {
  auto run = [held = block](const std::vector<torch::Tensor>& in) mutable {
    return std::vector<torch::Tensor>{held->forward(in[0])};
  };
  return checkpoint(*block, run, {x}).front();
}

}  // namespace dpunet::model
