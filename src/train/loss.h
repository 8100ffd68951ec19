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
  // The mask value of unlabelled pixels (sparse annotation; >= the class count), which
  // add nothing to either term; -1: every pixel is labelled.
  int64_t ignore_label = -1;
  // Training under DDP: the ranks whose batches make one global batch. The loss's sums
  // (Dice's per class, cross-entropy's and its class weights') are added over them, one
  // small all-reduce per call that every rank must make, so N ranks train the loss one
  // process trains with N times the batch. Null: the loss of this rank's batch.
  dist::Communicator* global_batch = nullptr;
};

// logits [N, K, H, W] (any float dtype, NCHW or NHWC), target [N, H, W] int64 class ids
// -> scalar.
// Cross-entropy is the (class-weighted) mean over the batch's pixels; soft Dice uses
// softmax probabilities and is computed per class over the whole batch, then averaged
// over the classes included. "The batch" is every rank's with global_batch, its pixels
// the labelled ones. In float32.
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& options);

// The two halves of segmentation_loss, for losses over more than one batch (validation
// adds every batch's sums, then scores once): everything the loss adds up over a batch
// in one float32 row, [cross-entropy sum, its weight, Dice intersections (K), Dice
// totals (K)], each part only when its term is on; and the loss from such a row.
torch::Tensor loss_sums(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& options);
torch::Tensor loss_from_sums(const torch::Tensor& sums, const LossOptions& options, int64_t classes);
int64_t loss_sums_size(const LossOptions& options, int64_t classes);

// Centre-crops masks [N, H, W] to [N, size, size]: the output of a valid-padded U-Net.
torch::Tensor centre_crop_masks(const torch::Tensor& masks, int64_t size);

}  // namespace dpunet::train
