// Segmentation metrics summed the right way across batches and ranks: per-class true
// positives, false positives and false negatives are added up first, and Dice and IoU
// come from the totals (not averages of per-batch or per-rank scores).
#pragma once

#include <torch/types.h>

#include <vector>

namespace dpunet::dist {
class Communicator;
}

namespace dpunet::train {

// Scores of one class's counts: NaN where the class is neither in the masks nor
// predicted (tp + fp + fn = 0), which every mean leaves out.
double dice_score(double tp, double fp, double fn);
double iou_score(double tp, double fp, double fn);
// Mean of the values that are not NaN; NaN when there are none.
double nan_mean(const std::vector<double>& values);

class ConfusionCounts {
 public:
  // Pixels whose mask value is `ignore_label` (>= classes; -1: none) are not counted.
  explicit ConfusionCounts(int64_t classes, int64_t ignore_label = -1);
  // From counts() of another: [K + 1, 3] float64.
  explicit ConfusionCounts(const torch::Tensor& counts);

  // logits [N, K, H, W], target [N, H, W] class ids. Counts stay on the logits' device:
  // nothing is read back until a score is asked for.
  void add(const torch::Tensor& logits, const torch::Tensor& target);
  // The same from predicted class ids [N, H, W] (integers, on any device).
  void add_predicted(const torch::Tensor& predicted, const torch::Tensor& target);
  // Adds every rank's counts into every rank's; `device` is where the communicator
  // takes tensors (CUDA for NCCL).
  void all_reduce(dist::Communicator& comm, const c10::Device& device);

  // Per class; NaN where a class is neither in the masks nor predicted (written as null
  // in JSON).
  std::vector<double> dice() const;
  std::vector<double> iou() const;
  // Mean Dice over the scored classes of 1..K-1 (background and NaN left out); NaN when
  // none is scored.
  double mean_foreground_dice() const;
  // Dice of "any foreground class" against background; NaN without any foreground.
  double foreground_dice() const;
  // [K + 1, 3] float64 on the host: tp, fp, fn per class, then of any foreground class.
  torch::Tensor counts() const;

 private:
  torch::Tensor counts_;  // [K + 1, 3] float64: tp, fp, fn per class; last row: any-foreground
  int64_t ignore_label_ = -1;
};

}  // namespace dpunet::train
