// non_finite_tensors and count_non_finite_tensors.
#include "model/finite_weights.h"

#include <torch/torch.h>

#include <vector>

namespace dpunet::model {
namespace {

template <typename Visit>
void each_floating_tensor(const torch::nn::Module& model, Visit visit) {
  for (const auto& p : model.named_parameters()) {
    if (p.value().defined() && p.value().is_floating_point()) visit(p.key(), p.value());
  }
  for (const auto& b : model.named_buffers()) {
    if (b.value().defined() && b.value().is_floating_point()) visit(b.key(), b.value());
  }
}

}  // namespace

std::string non_finite_tensors(const torch::nn::Module& model) {
  constexpr int64_t kListed = 12;  // an overflow usually reaches every tensor
  torch::NoGradGuard no_grad;
  std::string listing;
  int64_t count = 0;
  each_floating_tensor(model, [&](const std::string& name, const torch::Tensor& t) {
    if (torch::isfinite(t).all().item<bool>()) return;
    if (++count <= kListed) listing += "\n  " + name;
  });
  if (count > kListed) listing += "\n  and " + std::to_string(count - kListed) + " more";
  return listing;
}

torch::Tensor count_non_finite_tensors(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flags;
  each_floating_tensor(model, [&](const std::string&, const torch::Tensor& t) {
    flags.push_back(torch::isfinite(t).all().logical_not());
  });
  if (flags.empty()) return torch::zeros({});
  return torch::stack(flags).sum().to(torch::kFloat);
}

}  // namespace dpunet::model
