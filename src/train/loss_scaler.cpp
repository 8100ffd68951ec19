// LossScaler.
#include "train/loss_scaler.h"

#include <torch/torch.h>

namespace dpunet::train {

bool LossScaler::unscale(const std::vector<torch::Tensor>& gradients) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  bool finite = true;
  for (const torch::Tensor& g : gradients) {
    if (!g.defined()) continue;
    g.mul_(1.0 / state_.scale);
    finite = finite && torch::isfinite(g).all().item<bool>();
  }
  return finite;
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
