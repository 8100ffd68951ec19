// Validation over a held-out dataset: each rank evaluates every W-th sample (centre
// crops at the patch size, no augmentation; pixels mirrored in to pad an image smaller
// than the patch are not scored), then the confusion counts and loss sums
// are added over ranks once, so every rank gets the same, exact totals: the scores and
// the loss of the whole set, whatever the number of ranks and the batch size.
#pragma once

#include <torch/nn/module.h>

#include "data/dataset.h"
#include "data/normalize.h"
#include "dist/communicator.h"
#include "train/loss.h"
#include "train/metrics.h"

namespace dpunet::train {

struct ValidationOptions {
  int64_t batch_size = 4;
  int64_t patch_size = 0;          // 0: whole images
  data::Normalizer normalization;  // the training set's, so inputs are scaled as in training
  int64_t n_classes = 2;
  bool valid_padding = false;  // masks are cropped to the output size
};

struct ValidationResult {
  ConfusionCounts counts;
  // The loss of the whole set taken as one batch: cross-entropy over all its pixels,
  // Dice from all its intersections and totals.
  double loss = 0;
};

// `forward` maps images [B, C, P, P] on the model's device to logits.
ValidationResult validate(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                          const data::Dataset& dataset, const ValidationOptions& options, const LossOptions& loss,
                          const c10::Device& device, int rank, int world_size, dist::Communicator& comm);

}  // namespace dpunet::train
