// Dynamic loss scaling for fp16 training (as torch.amp.GradScaler): the loss is
// multiplied by a scale before backward; gradients are unscaled before clipping and the
// step; a step whose gradients hold inf/NaN is skipped and the scale halved (below 1 too:
// a gradient beyond fp16's range needs it); after `growth_interval` clean steps the scale
// doubles. The scale, the count of clean steps, the inf/NaN flag and the counts of skipped
// steps live on the loss's device and change there, so a step reads nothing back; they are
// read back for a log line (take_skips) and a checkpoint (state).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace dpunet::train {

struct LossScalerState {
  double scale = 65536.0;
  int64_t clean_steps = 0;  // since the last change
  // take_skips()' counts so far: a resumed run logs them and counts on from them (a run
  // stopped every few dozen steps would otherwise never reach kSkippedStepsToStop).
  int64_t skipped = 0;
  int64_t skipped_in_a_row = 0;
};

// What take_skips() reads back: the steps skipped since the previous reading, and the
// latest steps that were all skipped (0 when the last step was taken).
struct LossScalerSkips {
  int64_t skipped = 0;
  int64_t in_a_row = 0;
  double scale = 0;  // the scale now
};

// The smallest scale: halving stops here, short of 0, whose reciprocal would make every
// later gradient inf.
inline constexpr double kMinLossScale = 1.0 / (1 << 24);

// Steps skipped one after another that stop a run: by then the scale has been halved that
// often, so what spoils the gradients is no overflow loss scaling could cure.
inline constexpr int64_t kSkippedStepsToStop = 100;

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

  // Reads the counts of skipped steps back from the device and starts the next count.
  LossScalerSkips take_skips();

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
  torch::Tensor skips_;           // [2] int32: skipped since take_skips(), skipped in a row
};

}  // namespace dpunet::train
