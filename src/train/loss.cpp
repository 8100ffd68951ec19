// Cross-entropy + soft Dice.
#include "train/loss.h"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

namespace dpunet::train {

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  const torch::Tensor scores = logits.to(torch::kFloat);
  const int64_t classes = scores.size(1);
  torch::Tensor loss = torch::zeros({}, scores.options());
  if (o.ce_weight > 0) {
    namespace F = torch::nn::functional;
    auto ce_options = F::CrossEntropyFuncOptions();
    if (!o.class_weights.empty()) {
      ce_options.weight(torch::tensor(o.class_weights, scores.options()));
    }
    loss = loss + o.ce_weight * F::cross_entropy(scores, target, ce_options);
  }
  if (o.dice_weight > 0) {
    const torch::Tensor probabilities = torch::softmax(scores, 1);  // [N, K, H, W]
    const torch::Tensor one_hot = torch::one_hot(target, classes).permute({0, 3, 1, 2}).to(probabilities.scalar_type());
    const std::vector<int64_t> dims = {0, 2, 3};
    const torch::Tensor intersection = (probabilities * one_hot).sum(dims);  // [K]
    const torch::Tensor total = probabilities.sum(dims) + one_hot.sum(dims);
    constexpr double kSmooth = 1e-5;  // an absent class with no prediction scores 1
    torch::Tensor dice = (2 * intersection + kSmooth) / (total + kSmooth);
    if (!o.dice_include_background && classes > 1) dice = dice.slice(0, 1);
    loss = loss + o.dice_weight * (1 - dice.mean());
  }
  return loss;
}

torch::Tensor centre_crop_masks(const torch::Tensor& masks, int64_t size) {
  const int64_t top = (masks.size(1) - size) / 2, left = (masks.size(2) - size) / 2;
  return masks.slice(1, top, top + size).slice(2, left, left + size);
}

}  // namespace dpunet::train
