// The optimizer update and gradient clipping, over all parameters at once and without
// reading anything back to the host, so a GPU step never waits for the CPU.
//
// Three implementations of the same AdamW / SGD-Nesterov update:
//   fused          ATen's fused kernels (_fused_adamw_, _fused_sgd_): one pass per tensor
//                  list, on CPU and CUDA. Rounds differently from the other two in the
//                  last bits (it computes the bias correction on the device).
//   foreach        ATen's multi-tensor (_foreach_*) ops: a handful of launches per step,
//                  bit-identical to per_parameter.
//   per_parameter  LibTorch's torch::optim loop: several small kernels per parameter.
// All three keep torch::optim's state layout, so checkpoints do not depend on the choice.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

namespace dpunet::train {

enum class OptimizerImplementation { kFused, kForeach, kPerParameter };

// "fused", "foreach" or "per_parameter".
OptimizerImplementation parse_optimizer_implementation(const std::string& name);

struct OptimizerSettings {
  std::string name = "adamw";  // adamw | sgd (Nesterov momentum)
  OptimizerImplementation implementation = OptimizerImplementation::kFused;
  double lr = 1e-3;
  double weight_decay = 0;  // decoupled for AdamW, L2 for SGD
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double momentum = 0.99;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerSettings& settings,
                                                        const std::vector<torch::Tensor>& parameters);

// One step, skipped when found_inf (a 1-element float tensor on the parameters' device,
// from LossScaler::unscale) is nonzero. The fused implementation skips on the device,
// without reading the flag back (a skipped AdamW step does not count in the step numbers,
// checkpointed ones included); the others read it back, one host sync.
void step_unless_found_inf(torch::optim::Optimizer& optimizer, const torch::Tensor& found_inf);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Scales the gradients so their global L2 norm is at most max_norm (the same rule as
// torch.nn.utils.clip_grad_norm_), with multi-tensor ops and no host read-back. Returns
// the norm before clipping as a 0-dim tensor on the gradients' device.
torch::Tensor clip_gradient_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

}  // namespace dpunet::train
