// Cross-entropy + soft Dice.
#include "train/loss.h"

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <vector>

#include "common/error.h"
#include "dist/communicator.h"

namespace dpunet::train {
namespace {

// The class weights on `device`. From pinned memory without blocking: a plain copy from
// host memory would wait for the GPU to finish the queued work at every step.
torch::Tensor class_weight_tensor(const std::vector<double>& values, const torch::Device& device) {
  torch::Tensor weights = torch::tensor(values, torch::kFloat);
  if (!device.is_cuda()) return weights.to(device);
  return weights.pin_memory().to(device, /*non_blocking=*/true);
}

// Sums a tensor over all ranks in forward. Every rank then computes the same loss from
// the same global sums, so the gradient reaching each rank's own share of the sums is the
// global one; it is scaled by the world size because DDP averages the ranks' gradients,
// while the true gradient is their sum (the all-reduce's exact backward, without a
// collective in backward).
struct SumOverRanks : torch::autograd::Function<SumOverRanks> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local,
                               dist::Communicator* ranks) {
    ctx->saved_data["world"] = static_cast<int64_t>(ranks->world_size());
    torch::Tensor global = local.contiguous().clone();
    ranks->all_reduce_async(global, dist::ReduceOp::kSum)->wait_on_stream();
    return global;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {grads[0] * static_cast<double>(ctx->saved_data["world"].toInt()), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor loss_sums(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  DPUNET_CHECK(logits.dim() == 4 && target.dim() == 3 && target.size(0) == logits.size(0) &&
                   target.size(1) == logits.size(2) && target.size(2) == logits.size(3),
               "the loss needs logits [N, K, H, W] and masks [N, H, W], got logits ", logits.sizes(), " and masks ",
               target.sizes());
  const int64_t classes = logits.size(1);
  // A row of class scores per pixel, [N*H*W, K]: a free view of NHWC logits (the layout
  // on a GPU), so both softmaxes and the gradient they hand back stay in that layout
  // instead of going through NCHW copies; NCHW logits are copied once here.
  const torch::Tensor scores = logits.to(torch::kFloat).permute({0, 2, 3, 1}).reshape({-1, classes});
  torch::Tensor labels = target.reshape({-1});
  // 1 for a labelled pixel, 0 for an unlabelled one (whose label becomes class 0 so that
  // the per-pixel terms stay defined before they are multiplied by 0); undefined when
  // every pixel is labelled, which keeps that path as it was.
  torch::Tensor labelled;
  if (o.ignore_label >= 0) {
    const torch::Tensor ignored = labels.eq(o.ignore_label);
    labelled = ignored.logical_not().to(scores.scalar_type());
    labels = labels.masked_fill(ignored, 0);
  }
  const auto only_labelled = [&](const torch::Tensor& per_pixel) {
    return labelled.defined() ? per_pixel * (per_pixel.dim() == 1 ? labelled : labelled.unsqueeze(1)) : per_pixel;
  };
  std::vector<torch::Tensor> parts;
  if (o.ce_weight > 0) {
    namespace F = torch::nn::functional;
    // Per-row losses, then their (weighted) sum: ATen reduces a 2-D nll_loss with
    // reduction='mean' in one 32-thread block, far slower on millions of rows than its
    // unreduced kernel.
    auto ce_options = F::CrossEntropyFuncOptions().reduction(torch::kNone);
    if (o.class_weights.empty()) {
      parts.push_back(only_labelled(F::cross_entropy(scores, labels, ce_options)).sum().reshape({1}));
      parts.push_back(labelled.defined() ? labelled.sum().reshape({1})
                                         : torch::full({1}, static_cast<double>(labels.numel()), scores.options()));
    } else {
      const torch::Tensor weights = class_weight_tensor(o.class_weights, scores.device());
      parts.push_back(only_labelled(F::cross_entropy(scores, labels, ce_options.weight(weights))).sum().reshape({1}));
      parts.push_back(only_labelled(weights.index_select(0, labels)).sum().reshape({1}));
    }
  }
  if (o.dice_weight > 0) {
    const torch::Tensor probabilities = only_labelled(torch::softmax(scores, 1));  // [N*H*W, K]
    // Scattered straight into the probabilities' dtype: torch::one_hot would write int64
    // (8 bytes per pixel and class) and then a float copy.
    const torch::Tensor one_hot = only_labelled(torch::zeros_like(probabilities).scatter_(1, labels.unsqueeze(1), 1.0));
    parts.push_back((probabilities * one_hot).sum(0));
    parts.push_back(probabilities.sum(0) + one_hot.sum(0));
  }
  return parts.empty() ? torch::zeros({0}, scores.options()) : torch::cat(parts);
}

int64_t loss_sums_size(const LossOptions& o, int64_t classes) {
  return (o.ce_weight > 0 ? 2 : 0) + (o.dice_weight > 0 ? 2 * classes : 0);
}

torch::Tensor loss_from_sums(const torch::Tensor& sums, const LossOptions& o, int64_t classes) {
  DPUNET_CHECK(sums.dim() == 1 && sums.size(0) == loss_sums_size(o, classes), "loss sums of shape ", sums.sizes(),
               " for ", classes, " classes");
  torch::Tensor loss = torch::zeros({}, sums.options());
  int64_t at = 0;
  if (o.ce_weight > 0) {
    // A batch without a pixel of a class weighted above 0 has a weight sum of 0, and a
    // cross-entropy sum of exactly 0 with it: that term is 0, not 0/0. Dividing by 1
    // then keeps the gradient into those zero-weighted pixels finite (it is multiplied by
    // 0); any positive sum, however small its weights, divides as it is.
    const torch::Tensor weight_sum = sums[1];
    loss = loss + o.ce_weight * sums[0] / torch::where(weight_sum > 0, weight_sum, torch::ones_like(weight_sum));
    at = 2;
  }
  if (o.dice_weight > 0) {
    const torch::Tensor intersection = sums.slice(0, at, at + classes);
    const torch::Tensor total = sums.slice(0, at + classes, at + 2 * classes);
    // Keeps the ratio finite; it does not make an absent class score 1 (the softmax puts
    // some probability on every class), so a class missing from the batch adds about
    // 1/(classes in the mean) to the loss, as in nnU-Net.
    constexpr double kSmooth = 1e-5;
    torch::Tensor dice = (2 * intersection + kSmooth) / (total + kSmooth);
    if (!o.dice_include_background && classes > 1) dice = dice.slice(0, 1);
    loss = loss + o.dice_weight * (1 - dice.mean());
  }
  return loss;
}

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  torch::Tensor sums = loss_sums(logits, target, o);
  if (o.global_batch != nullptr && o.global_batch->world_size() > 1 && sums.numel() > 0) {
    sums = SumOverRanks::apply(sums, o.global_batch);
  }
  return loss_from_sums(sums, o, logits.size(1));
}

torch::Tensor centre_crop_masks(const torch::Tensor& masks, int64_t size) {
  const int64_t top = (masks.size(1) - size) / 2, left = (masks.size(2) - size) / 2;
  return masks.slice(1, top, top + size).slice(2, left, left + size);
}

}  // namespace dpunet::train
