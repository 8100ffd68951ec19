// Cross-entropy + soft Dice.
#include "train/loss.h"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include "common/error.h"

namespace dpunet::train {
namespace {

// The class weights on `device`. From pinned memory without blocking: a plain copy from
// host memory would wait for the GPU to finish the queued work at every step.
torch::Tensor class_weight_tensor(const std::vector<double>& values, const torch::Device& device) {
  torch::Tensor weights = torch::tensor(values, torch::kFloat);
  if (!device.is_cuda()) return weights.to(device);
  return weights.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace

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
    // Per-row losses, then their mean: ATen reduces a 2-D nll_loss in one 32-thread block,
    // far slower on millions of rows than its unreduced kernel. With class weights the
    // mean is weighted, as reduction='mean' weights it.
    auto ce_options = F::CrossEntropyFuncOptions().reduction(torch::kNone);
    if (o.class_weights.empty()) {
      loss = loss + o.ce_weight * F::cross_entropy(scores, labels, ce_options).mean();
    } else {
      const torch::Tensor weights = class_weight_tensor(o.class_weights, scores.device());
      const torch::Tensor weighted = F::cross_entropy(scores, labels, ce_options.weight(weights));
      loss = loss + o.ce_weight * weighted.sum() / weights.index_select(0, labels).sum();
    }
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
