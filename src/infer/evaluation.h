// What `predict --eval` reports: Dice and IoU per class pooled over every pixel of every
// image (as validation scores), and per image with their mean over images (as nnU-Net's
// summary reports cases), gathered from every rank into one table.
#pragma once

#include <torch/types.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace dpunet::dist {
class Communicator;
}

namespace dpunet::infer {

class EvaluationTable {
 public:
  // `images`: every image of the run, over all ranks; rows are indexed like the inputs.
  // Mask pixels of value `ignore_label` (-1: none) are left out of every score.
  EvaluationTable(int64_t images, int64_t classes, int64_t ignore_label = -1);

  // predicted [H, W] class ids (any device, any integer type), mask [H, W] class ids of
  // image `index`; an image whose mask is all ignore label is left out (scores nothing).
  void add(int64_t index, const torch::Tensor& predicted, const torch::Tensor& mask);
  // Sums every rank's rows into every rank's (each image is scored on one rank only);
  // `device` is where the communicator takes tensors.
  void all_reduce(dist::Communicator& comm, const c10::Device& device);

  int64_t evaluated() const;
  // The report; `names[i]` names image i. Classes neither in an image's mask nor
  // predicted score NaN there (null in JSON) and stay out of every mean.
  nlohmann::json report(const std::vector<std::string>& names) const;

 private:
  int64_t classes_;
  int64_t ignore_label_;
  torch::Tensor rows_;  // [images, (K + 1) * 3 + 1] float64: ConfusionCounts, then 1 when scored
};

}  // namespace dpunet::infer
