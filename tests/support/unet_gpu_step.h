// One forward and backward of a small U-Net on the GPU as training runs it (NHWC weights
// and input), with cuDNN deterministic and TF32 off (restored afterwards), so that two
// variants of the model can be compared; also which kernels its layers took.
#pragma once

#include <torch/torch.h>

#include "model/kernel_usage.h"
#include "model/unet.h"
#include "train/setup.h"

namespace dpunet::test {

struct UnetGpuStep {
  std::vector<torch::Tensor> grads, buffers;  // on the CPU, in parameters()/buffers() order
  torch::Tensor output;                       // the forward's, on the CPU
  model::KernelUsage usage;
};

// `checkpointed`: the blocks `policy` selects (every one by default); `recompute_norm`:
// BatchNorm+ReLU outputs recomputed in backward (Unet::recompute_norm_outputs). Training's
// checkpointing does both; they are separate here so that each can be compared with the
// model without it.
inline UnetGpuStep unet_gpu_step(const model::UnetOptions& options, int64_t size, bool checkpointed = false,
                                 bool recompute_norm = false, torch::ScalarType type = torch::kFloat,
                                 model::CheckpointPolicy policy = model::CheckpointPolicy::kAll) {
  auto& context = at::globalContext();
  const bool tf32 = context.allowTF32CuDNN(), deterministic = context.deterministicCuDNN();
  context.setAllowTF32CuDNN(false);
  context.setDeterministicCuDNN(true);
  torch::manual_seed(0);
  model::Unet net(options);
  if (checkpointed) net->use_checkpointing(true, policy);
  net->recompute_norm_outputs(recompute_norm);
  net->to(torch::kCUDA, type);
  // A one-channel input's NHWC and NCHW strides are the same: without NHWC weights every
  // map would stay NCHW and none of dpunet's kernels would apply.
  train::use_channels_last_weights(*net);
  const torch::Tensor x = torch::randn({2, options.n_channels, size, size})
                              .to(torch::kCUDA, type)
                              .contiguous(at::MemoryFormat::ChannelsLast);
  UnetGpuStep step;
  {
    const model::KernelUsage::Scope recording(step.usage);
    const torch::Tensor output = net->forward(x);
    output.square().mean().backward();
    step.output = output.detach().cpu();
  }
  for (const auto& p : net->parameters()) step.grads.push_back(p.grad().cpu());
  for (const auto& b : net->buffers()) step.buffers.push_back(b.cpu());
  context.setAllowTF32CuDNN(tf32);
  context.setDeterministicCuDNN(deterministic);
  return step;
}

}  // namespace dpunet::test
