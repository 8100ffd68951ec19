// Cross-entropy + soft Dice.
#include "train/loss.h"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include "common/error.h"

namespace dpunet::train {

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  DPUNET_CHECK(logits.dim() == 4 && target.dim() == 3 && target.size(0) == logits.size(0) &&
                   target.size(1) == logits.size(2) && target.size(2) == logits.size(3),
               "the loss needs logits [N, K, H, W] and masks [N, H, W], got logits ", logits.sizes(), " and masks ",
               target.sizes());
  const int64_t classes = logits.size(1);
  // A row of class scores per pixel, [N*H*W, K]: a free view of NHWC logits (the layout
  // on a GPU), so both softmaxes and the gradient they hand back stay in that layout
  // instead of going through NCHW copies; NCHW logits are copied once here.
  const torch::Tensor scores = logits.to(torch::kFloat).permute({0, 2, 3, 1}).reshape({-1, classes});
  const torch::Tensor labels = target.reshape({-1});
  torch::Tensor loss = torch::zeros({}, scores.options());
  if (o.ce_weight > 0) {
    namespace F = torch::nn::functional;
    auto ce_options = F::CrossEntropyFuncOptions();
    if (!o.class_weights.empty()) {
      ce_options.weight(torch::tensor(o.class_weights, scores.options()));
    }
    loss = loss + o.ce_weight * F::cross_entropy(scores, labels, ce_options);
  }
  if (o.dice_weight > 0) {
    const torch::Tensor probabilities = torch::softmax(scores, 1);  // [N*H*W, K]
    const torch::Tensor one_hot = torch::one_hot(labels, classes).to(probabilities.scalar_type());
    const torch::Tensor intersection = (probabilities * one_hot).sum(0);  // [K]
    const torch::Tensor total = probabilities.sum(0) + one_hot.sum(0);
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
