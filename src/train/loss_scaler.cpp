// LossScaler.
#include "train/loss_scaler.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <torch/torch.h>

#include <map>
#include <string>

namespace dpunet::train {

bool LossScaler::unscale(const std::vector<torch::Tensor>& gradients) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  // One multi-tensor pass per device that unscales and flags inf/NaN, and one read-back
  // per step (as GradScaler), instead of a check and a read-back per gradient.
  std::map<std::string, std::vector<torch::Tensor>> by_device;
  for (const torch::Tensor& g : gradients) {
    if (g.defined()) by_device[g.device().str()].push_back(g);
  }
  double found_inf = 0;
  for (auto& [device, grads] : by_device) {
    const auto options = torch::TensorOptions().dtype(torch::kFloat).device(grads.front().device());
    torch::Tensor found = torch::zeros({1}, options);
    // Scales are powers of two, so the float32 reciprocal is exact.
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, torch::full({1}, 1.0 / state_.scale, options));
    found_inf += found.item<float>();
  }
  return found_inf == 0;
}

void LossScaler::update(bool step_taken) {
  if (!enabled_) return;
  if (!step_taken) {
    state_.scale = std::max(1.0, state_.scale * 0.5);
    state_.clean_steps = 0;
  } else if (++state_.clean_steps >= growth_interval_) {
    state_.scale *= 2.0;
    state_.clean_steps = 0;
  }
}

}  // namespace dpunet::train
