// LossScaler: ATen's AMP ops, as GradScaler uses them, on the scaler's device tensors.
#include "train/loss_scaler.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>
#include <torch/torch.h>

#include "common/error.h"

namespace dpunet::train {

LossScaler::LossScaler(bool enabled, int64_t growth_interval) : enabled_(enabled), growth_interval_(growth_interval) {
  load(LossScalerState{});
}

void LossScaler::place_on(const torch::Device& device) {
  if (scale_.device() == device) return;
  scale_ = scale_.to(device);
  growth_tracker_ = growth_tracker_.to(device);
  found_inf_ = found_inf_.to(device);
  skips_ = skips_.to(device);
}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) {
  if (!enabled_) return loss;
  place_on(loss.device());
  return loss.to(torch::kFloat) * scale_.reshape({});  // 65536 is inf in fp16
}

torch::Tensor LossScaler::unscale(const std::vector<torch::Tensor>& gradients) {
  DPUNET_CHECK(enabled_, "loss scaler: unscale() on a disabled scaler");
  torch::NoGradGuard no_grad;
  found_inf_.zero_();
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& g : gradients) {
    if (!g.defined()) continue;
    DPUNET_CHECK(g.device() == scale_.device(), "loss scaler: a gradient on ", g.device().str(),
                 ", but the scaled loss was on ", scale_.device().str());
    grads.push_back(g);
  }
  // One multi-tensor pass that unscales and flags inf/NaN. Scales are powers of two, so
  // the float32 reciprocal is exact.
  if (!grads.empty()) at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, scale_.reciprocal());
  return found_inf_;
}

void LossScaler::update(const torch::Tensor& found_inf) {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf, /*scale_growth_factor=*/2.0,
                         /*scale_backoff_factor=*/0.5, growth_interval_);
  scale_.clamp_min_(kMinLossScale);
  // {skipped + 1, in_a_row + 1} for a skipped step, {skipped, 0} for a taken one.
  const torch::Tensor skipped = found_inf.reshape({1}).gt(0).to(torch::kInt);
  skips_.add_(skipped);
  skips_.narrow(0, 1, 1).mul_(skipped);
}

LossScalerSkips LossScaler::take_skips() {
  if (!enabled_) return {};
  const torch::Tensor host = skips_.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);  // not a view on a CPU
  skips_.narrow(0, 0, 1).zero_();
  return {host[0].item<int64_t>(), host[1].item<int64_t>(), scale_.item<double>()};
}

LossScalerState LossScaler::state() const {
  const torch::Tensor skips = skips_.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
  return {scale_.item<double>(), growth_tracker_.item<int64_t>(), skips[0].item<int64_t>(), skips[1].item<int64_t>()};
}

void LossScaler::load(const LossScalerState& state) {
  const torch::Device device = scale_.defined() ? scale_.device() : torch::Device(torch::kCPU);
  const auto on = torch::TensorOptions().device(device);
  scale_ = torch::full({1}, state.scale, on.dtype(torch::kFloat));
  growth_tracker_ = torch::full({1}, state.clean_steps, on.dtype(torch::kInt));
  found_inf_ = torch::zeros({1}, on.dtype(torch::kFloat));
  skips_ = torch::tensor({state.skipped, state.skipped_in_a_row}, torch::kLong).to(on.dtype(torch::kInt));
}

}  // namespace dpunet::train
