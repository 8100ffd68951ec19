// relu(batch_norm(x)) for the U-Net's blocks. In training mode on a CUDA build, NHWC maps
// take fused kernels (model/batch_norm_relu_kernels.h): one pass for the statistics and
// one for normalise + ReLU, and two in backward, instead of ATen's separate BatchNorm and
// ReLU passes. Everything else (CPU, eval mode, NCHW, unusual widths) runs BatchNorm and
// then an in-place ReLU. Either way the BatchNorm module's parameters and running
// statistics are the ones used and updated. Inside a checkpointed block the fused path
// records its batch statistics, and the recomputation in backward reuses them: the
// normalise pass alone, bit-identical to the first forward (model/recompute_tape.h).
#pragma once

#include <torch/nn/modules/batchnorm.h>

namespace dpunet::model {

torch::Tensor batch_norm_relu(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, bool allow_fused = true);

// Whether `x` through `bn` would take the fused kernels (which need an sm_80+ GPU).
bool fused_batch_norm_relu_applies(const torch::Tensor& x, const torch::nn::BatchNorm2dImpl& bn);

}  // namespace dpunet::model
