// relu(batch_norm(x)) for the U-Net's blocks. In training mode on a CUDA build, NHWC maps
// take fused kernels (model/batch_norm_relu_kernels.h): one pass for the statistics and
// one for normalise + ReLU, and two in backward, instead of ATen's separate BatchNorm and
// ReLU passes. Everything else (CPU, eval mode, NCHW, unusual widths) runs BatchNorm and
// then an in-place ReLU. Either way the BatchNorm module's parameters and running
// statistics are the ones used and updated. Inside a checkpointed block the fused path
// records its batch statistics, and the recomputation in backward reuses them: the
// normalise pass alone, bit-identical to the first forward (common/recompute_tape.h).
#pragma once

#include <vector>

#include <torch/nn/modules/batchnorm.h>

#include "model/output_use.h"

namespace dpunet::model {

// `statistics`, when given, receives the batch statistics {mean, invstd} the fused path
// used (left empty on ATen's path), for batch_norm_relu_replay. With
// OutputUse::kGradientOnly, a recomputation that reuses recorded statistics on the fused
// path skips the normalise pass (the kernels' backward reads x, not the output) and
// returns a map whose values are unset; every other path computes the output as usual.
torch::Tensor batch_norm_relu(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, bool allow_fused = true,
                              std::vector<torch::Tensor>* statistics = nullptr, OutputUse use = OutputUse::kRead);

// relu(batch_norm(x)) in training mode again, as a forward of batch_norm_relu computed it
// (bit for bit) and differentiable, but leaving the running statistics, the counter of
// batches and any checkpoint's tape alone: for recomputing the output in backward.
// `statistics` is what that forward returned: the fused kernels normalise with them;
// empty, ATen's BatchNorm computes them again from x.
torch::Tensor batch_norm_relu_replay(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                     double eps, const std::vector<torch::Tensor>& statistics);

// Whether `x` through `bn` would take the fused kernels (which need an sm_80+ GPU).
bool fused_batch_norm_relu_applies(const torch::Tensor& x, const torch::nn::BatchNorm2dImpl& bn);

}  // namespace dpunet::model
