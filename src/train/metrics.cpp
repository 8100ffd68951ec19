// ConfusionCounts: counts on the model's device, read back once per validation (or
// when a score is asked for before the all-reduce).
#include "train/metrics.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "dist/communicator.h"

namespace dpunet::train {

// NaN for a class neither present nor predicted: a score of 1 there would claim a
// success nothing was tested for, and lift every mean it enters (nnU-Net also leaves
// such classes out).
double dice_score(double tp, double fp, double fn) {
  return tp + fp + fn == 0 ? std::nan("") : 2 * tp / (2 * tp + fp + fn);
}

double iou_score(double tp, double fp, double fn) {
  return tp + fp + fn == 0 ? std::nan("") : tp / (tp + fp + fn);
}

double nan_mean(const std::vector<double>& values) {
  double sum = 0;
  int64_t count = 0;
  for (double v : values) {
    if (std::isnan(v)) continue;
    sum += v;
    ++count;
  }
  return count > 0 ? sum / static_cast<double>(count) : std::nan("");
}

ConfusionCounts::ConfusionCounts(int64_t classes, int64_t ignore_label)
    : counts_(torch::zeros({classes + 1, 3}, torch::kDouble)), ignore_label_(ignore_label) {
  DPUNET_CHECK(ignore_label == -1 || ignore_label >= classes, "ignore label ", ignore_label, " is one of the ", classes,
               " classes");
}

ConfusionCounts::ConfusionCounts(const torch::Tensor& counts) : counts_(counts.to(torch::kDouble).clone()) {
  DPUNET_CHECK(counts.dim() == 2 && counts.size(0) >= 2 && counts.size(1) == 3,
               "confusion counts must be [classes + 1, 3], got ", counts.sizes());
}

void ConfusionCounts::add(const torch::Tensor& logits, const torch::Tensor& target) {
  add_predicted(logits.argmax(1), target);
}

void ConfusionCounts::add_predicted(const torch::Tensor& predicted_ids, const torch::Tensor& target) {
  const int64_t classes = counts_.size(0) - 1;
  if (counts_.device() != predicted_ids.device()) counts_ = counts_.to(predicted_ids.device());
  const auto count_options = predicted_ids.options().dtype(torch::kDouble);
  const torch::Tensor predicted = predicted_ids.to(torch::kLong);
  torch::Tensor truth = target.to(predicted.scalar_type());
  // Each pixel adds 1 to its cell, an unlabelled one 0 (to any cell: it is counted as
  // class 0), so the counts stay on the device without a data-dependent size.
  torch::Tensor weight = torch::ones({1}, count_options).expand({truth.numel()});
  if (ignore_label_ >= 0) {
    const torch::Tensor ignored = truth.eq(ignore_label_);
    truth = truth.masked_fill(ignored, 0);
    weight = ignored.logical_not().flatten().to(torch::kDouble);
  }
  // Joint histogram of (truth, predicted): tp on the diagonal, fp and fn off it.
  // index_add_ rather than bincount, whose CUDA kernel reads the maximum back to the host.
  const torch::Tensor cells = (truth * classes + predicted).flatten();
  const torch::Tensor joint = torch::zeros({classes * classes}, count_options).index_add_(0, cells, weight);
  const torch::Tensor matrix = joint.view({classes, classes});  // [truth, predicted]
  const torch::Tensor tp = matrix.diagonal();
  const torch::Tensor fp = matrix.sum(0) - tp;
  const torch::Tensor fn = matrix.sum(1) - tp;
  counts_.slice(0, 0, classes) += torch::stack({tp, fp, fn}, 1);
  // Any foreground: background's fn are foreground's fp and vice versa.
  const torch::Tensor fg_fp = fn[0], fg_fn = fp[0];
  counts_[classes] += torch::stack({matrix.sum() - tp[0] - fg_fp - fg_fn, fg_fp, fg_fn});
}

void ConfusionCounts::all_reduce(dist::Communicator& comm, const c10::Device& device) {
  torch::Tensor on_device = counts_.to(device).contiguous();
  comm.all_reduce(on_device, dist::ReduceOp::kSum);
  counts_ = on_device.cpu();  // the one read-back of a validation
}

torch::Tensor ConfusionCounts::counts() const {
  return counts_.cpu();
}

std::vector<double> ConfusionCounts::dice() const {
  const torch::Tensor host = counts();
  const auto c = host.accessor<double, 2>();
  std::vector<double> out;
  for (int64_t k = 0; k + 1 < host.size(0); ++k) out.push_back(dice_score(c[k][0], c[k][1], c[k][2]));
  return out;
}

std::vector<double> ConfusionCounts::iou() const {
  const torch::Tensor host = counts();
  const auto c = host.accessor<double, 2>();
  std::vector<double> out;
  for (int64_t k = 0; k + 1 < host.size(0); ++k) out.push_back(iou_score(c[k][0], c[k][1], c[k][2]));
  return out;
}

double ConfusionCounts::mean_foreground_dice() const {
  const std::vector<double> all = dice();
  return all.size() > 1 ? nan_mean(std::vector<double>(all.begin() + 1, all.end())) : std::nan("");
}

double ConfusionCounts::foreground_dice() const {
  const torch::Tensor host = counts();
  const auto c = host.accessor<double, 2>();
  const int64_t any = host.size(0) - 1;
  return dice_score(c[any][0], c[any][1], c[any][2]);
}

}  // namespace dpunet::train
