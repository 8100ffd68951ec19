// Relative distance between tensors, the measure behind "equal within 1e-5 relative".
#pragma once

#include <torch/torch.h>

namespace dpunet::test {

// ||a - b|| / max(||b||, tiny): 0 for identical tensors.
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const double diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>();
  const double scale = b.to(torch::kDouble).norm().item<double>();
  return diff / std::max(scale, 1e-30);
}

}  // namespace dpunet::test
