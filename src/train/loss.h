// The segmentation loss: weighted cross-entropy plus soft Dice, as nnU-Net trains.
#pragma once

#include <torch/types.h>

#include <vector>

namespace dpunet::dist {
class Communicator;
}

namespace dpunet::train {

struct LossOptions {
  double ce_weight = 1.0;
  double dice_weight = 1.0;
  std::vector<double> class_weights;     // cross-entropy only; empty: equal
  bool dice_include_background = false;  // class 0
  // Training under DDP: Dice's per-class sums are added over these ranks (one small
  // all-reduce per call, which every rank must make), so N ranks train the Dice of the
  // global batch, as one process does with N times the batch. Null: this rank's batch.
  dist::Communicator* dice_ranks = nullptr;
};

// logits [N, K, H, W] (any float dtype, NCHW or NHWC), target [N, H, W] int64 class ids
// -> scalar.
// Soft Dice uses softmax probabilities and is computed per class over the whole batch
// (over all ranks' batches with dice_ranks), then averaged over the classes included;
// computed in float32.
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& options);

// Centre-crops masks [N, H, W] to [N, size, size]: the output of a valid-padded U-Net.
torch::Tensor centre_crop_masks(const torch::Tensor& masks, int64_t size);

}  // namespace dpunet::train
