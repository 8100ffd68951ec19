// Dynamic loss scaling for fp16 training (as torch.cuda.amp.GradScaler): the loss is
// multiplied by a scale before backward; gradients are unscaled before clipping and
// the step; a step whose gradients hold inf/NaN is skipped and the scale halved; after
// `growth_interval` clean steps the scale doubles. Its state is checkpointed.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace dpunet::train {

struct LossScalerState {
  double scale = 65536.0;
  int64_t clean_steps = 0;  // since the last change
};

class LossScaler {
 public:
  explicit LossScaler(bool enabled, int64_t growth_interval = 2000)
      : enabled_(enabled), growth_interval_(growth_interval) {}

  bool enabled() const { return enabled_; }
  torch::Tensor scale(const torch::Tensor& loss) const { return enabled_ ? loss * state_.scale : loss; }
  // Divides the gradients by the scale; returns false (skip the step) when any is not finite.
  bool unscale(const std::vector<torch::Tensor>& gradients);
  // Adjusts the scale after a step attempt.
  void update(bool step_taken);

  const LossScalerState& state() const { return state_; }
  void load(const LossScalerState& state) { state_ = state; }

 private:
  bool enabled_;
  int64_t growth_interval_;
  LossScalerState state_;
};

}  // namespace dpunet::train
