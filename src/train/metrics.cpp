// ConfusionCounts: counts on the model's device, read back once per validation.
#include "train/metrics.h"

#include <torch/torch.h>

#include "dist/communicator.h"

namespace dpunet::train {
namespace {

double dice_of(double tp, double fp, double fn) {
  return tp + fp + fn == 0 ? 1.0 : 2 * tp / (2 * tp + fp + fn);
}
double iou_of(double tp, double fp, double fn) {
  return tp + fp + fn == 0 ? 1.0 : tp / (tp + fp + fn);
}

}  // namespace

ConfusionCounts::ConfusionCounts(int64_t classes) : counts_(torch::zeros({classes + 1, 3}, torch::kDouble)) {}

void ConfusionCounts::add(const torch::Tensor& logits, const torch::Tensor& target) {
  const int64_t classes = counts_.size(0) - 1;
  const torch::Tensor predicted = logits.argmax(1);
  const torch::Tensor truth = target.to(predicted.scalar_type());
  // Joint histogram of (truth, predicted): tp on the diagonal, fp and fn off it.
  const torch::Tensor joint =
      torch::bincount((truth * classes + predicted).flatten(), {}, classes * classes).to(torch::kDouble).cpu();
  const torch::Tensor matrix = joint.view({classes, classes});  // [truth, predicted]
  const torch::Tensor tp = matrix.diagonal();
  const torch::Tensor fp = matrix.sum(0) - tp;
  const torch::Tensor fn = matrix.sum(1) - tp;
  counts_.slice(0, 0, classes) += torch::stack({tp, fp, fn}, 1);
  // Any foreground: background's fn are foreground's fp and vice versa.
  const double background_tp = tp[0].item<double>(), all = matrix.sum().item<double>();
  const double fg_fp = fn[0].item<double>(), fg_fn = fp[0].item<double>();
  counts_[classes] += torch::tensor({all - background_tp - fg_fp - fg_fn, fg_fp, fg_fn}, torch::kDouble);
}

void ConfusionCounts::add_loss(double loss_sum, int64_t samples) {
  loss_sum_ += loss_sum;
  samples_ += samples;
}

void ConfusionCounts::all_reduce(dist::Communicator& comm, const c10::Device& device) {
  torch::Tensor packed =
      torch::cat({counts_.flatten(), torch::tensor({loss_sum_, double(samples_)}, torch::kDouble)}).to(device);
  comm.all_reduce(packed, dist::ReduceOp::kSum);
  packed = packed.cpu();
  counts_ = packed.slice(0, 0, counts_.numel()).view(counts_.sizes()).clone();
  loss_sum_ = packed[-2].item<double>();
  samples_ = static_cast<int64_t>(packed[-1].item<double>());
}

double ConfusionCounts::mean_loss() const {
  return samples_ > 0 ? loss_sum_ / samples_ : 0.0;
}

std::vector<double> ConfusionCounts::dice() const {
  std::vector<double> out;
  for (int64_t k = 0; k + 1 < counts_.size(0); ++k) {
    out.push_back(dice_of(counts_[k][0].item<double>(), counts_[k][1].item<double>(), counts_[k][2].item<double>()));
  }
  return out;
}

std::vector<double> ConfusionCounts::iou() const {
  std::vector<double> out;
  for (int64_t k = 0; k + 1 < counts_.size(0); ++k) {
    out.push_back(iou_of(counts_[k][0].item<double>(), counts_[k][1].item<double>(), counts_[k][2].item<double>()));
  }
  return out;
}

double ConfusionCounts::mean_foreground_dice() const {
  const std::vector<double> all = dice();
  double sum = 0;
  for (size_t k = 1; k < all.size(); ++k) sum += all[k];
  return all.size() > 1 ? sum / static_cast<double>(all.size() - 1) : 0.0;
}

double ConfusionCounts::foreground_dice() const {
  const auto row = counts_[counts_.size(0) - 1];
  return dice_of(row[0].item<double>(), row[1].item<double>(), row[2].item<double>());
}

}  // namespace dpunet::train
