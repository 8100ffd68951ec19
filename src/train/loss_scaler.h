// Dynamic loss scaling for fp16 training (as torch.amp.GradScaler): the loss is
// multiplied by a scale before backward; gradients are unscaled before clipping and the
// step; a step whose gradients hold inf/NaN is skipped and the scale halved (not below 1); after
// `growth_interval` clean steps the scale doubles. The scale, the count of clean steps
// and the inf/NaN flag live on the loss's device and change there, so a step reads
// nothing back; the state is read back only for a checkpoint.
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
  explicit LossScaler(bool enabled, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  // loss * scale, on the loss's device (the scaler's state moves there on first use).
  torch::Tensor scale(const torch::Tensor& loss);
  // Divides the gradients by the scale and returns a 1-element float tensor on their
  // device: nonzero when any gradient holds inf/NaN (skip the step:
  // step_unless_found_inf).
  torch::Tensor unscale(const std::vector<torch::Tensor>& gradients);
  // Adjusts the scale after a step attempt, from unscale()'s flag.
  void update(const torch::Tensor& found_inf);

  // Reads the state back from the device.
  LossScalerState state() const;
  void load(const LossScalerState& state);

 private:
  void place_on(const torch::Device& device);

  bool enabled_;
  int64_t growth_interval_;
  torch::Tensor scale_;           // [1] float
  torch::Tensor growth_tracker_;  // [1] int32: clean steps since the last change
  torch::Tensor found_inf_;       // [1] float
};

}  // namespace dpunet::train
