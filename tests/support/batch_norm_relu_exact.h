// BatchNorm in training (batch statistics, biased variance) then ReLU, forward and
// backward in float64 on the CPU, with the ReLU's pass decisions given: the exact
// gradients of the function a float32 implementation computed, whatever it decided for
// the values that lie within its rounding of zero. Those few decisions differ between
// any two implementations (and from float64's), and each moves a channel's gradient sums
// by a whole dy: a reference that makes its own decisions would judge them, not the
// arithmetic.
#pragma once

#include <vector>

#include <torch/torch.h>

namespace dpunet::test {

struct BatchNormReluExact {
  torch::Tensor pre_relu;  // xhat * weight + bias, float64's own: where its ReLU passes
  torch::Tensor dx, dweight, dbias;
};

// x, dy: [N, C, H, W]; weight, bias: [C]; passed: where the ReLU let the gradient through.
inline BatchNormReluExact batch_norm_relu_exact(const torch::Tensor& x, const torch::Tensor& dy,
                                                const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                                                const torch::Tensor& passed) {
  const auto f64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); };
  const std::vector<int64_t> over{0, 2, 3};  // everything but the channel
  const auto per_channel = [](const torch::Tensor& t) { return t.view({1, -1, 1, 1}); };
  const torch::Tensor xs = f64(x), g = f64(dy) * f64(passed);
  const torch::Tensor mean = xs.mean(over, /*keepdim=*/true);
  const torch::Tensor invstd = ((xs - mean).square().mean(over, /*keepdim=*/true) + eps).rsqrt();
  const torch::Tensor xhat = (xs - mean) * invstd;
  const torch::Tensor w = per_channel(f64(weight));
  BatchNormReluExact r;
  r.pre_relu = xhat * w + per_channel(f64(bias));
  r.dbias = g.sum(over);
  r.dweight = (g * xhat).sum(over);
  const double rows = static_cast<double>(xs.numel() / xs.size(1));
  r.dx = w * invstd * (g - per_channel(r.dbias) / rows - xhat * per_channel(r.dweight) / rows);
  return r;
}

}  // namespace dpunet::test
