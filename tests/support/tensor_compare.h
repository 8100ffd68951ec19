// Comparing tensors: relative distance (the measure behind "equal within 1e-5
// relative"), and identity bit for bit.
#pragma once

#include <cstring>

#include <torch/torch.h>
#include "support/catch.h"

namespace dpunet::test {

// ||a - b|| / max(||b||, tiny): 0 for identical tensors.
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const double diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>();
  const double scale = b.to(torch::kDouble).norm().item<double>();
  return diff / std::max(scale, 1e-30);
}

// Same sizes, type and bits, whatever the layouts (torch::equal calls -0 and +0 equal).
inline bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.detach().cpu().contiguous(), y = b.detach().cpu().contiguous();
  return x.sizes() == y.sizes() && x.scalar_type() == y.scalar_type() &&
         std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// same_bits, except that a NaN matches any NaN, whatever its payload.
inline bool same_bits_or_both_nan(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.detach().cpu().contiguous(), y = b.detach().cpu().contiguous();
  if (x.sizes() != y.sizes() || x.scalar_type() != y.scalar_type()) return false;
  const auto bits = x.element_size() == 2 ? torch::kShort : x.element_size() == 4 ? torch::kInt : torch::kLong;
  torch::Tensor same = x.view(bits) == y.view(bits);
  if (x.is_floating_point()) same = same | (x.isnan() & y.isnan());
  return same.all().item<bool>();
}

// Every element of `actual` within `tolerance` times expected's largest magnitude (plus
// `floor`) of `expected`'s: for results of sums taken in another order, whose rounding
// follows the scale of the whole tensor rather than each element's. Says the figures.
inline bool within_scale(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance,
                         double floor = 0) {
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble);
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble);
  const double scale = e.abs().max().item<double>();
  const double difference = (a - e).abs().max().item<double>();
  UNSCOPED_INFO("largest difference " << difference << " against a largest magnitude of " << scale);
  return difference <= tolerance * scale + floor;
}

// `actual` is within `tolerance` of `expected` relative to expected's largest magnitude,
// except at no more than one element in a thousand (BatchNorm then ReLU computed two
// ways: where a normalised value lies within rounding of zero, they may disagree on the
// ReLU), and within `tolerance` as a whole.
inline void check_close_but_relu(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance,
                                 const char* what) {
  INFO(what << " of shape " << expected.sizes());
  const torch::Tensor a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  const double scale = std::max(e.abs().max().item<double>(), 1e-12);
  CHECK(((a - e).abs() > tolerance * scale).to(torch::kDouble).mean().item<double>() <= 1e-3);
  CHECK(relative_error(a, e) < tolerance);
}

}  // namespace dpunet::test
