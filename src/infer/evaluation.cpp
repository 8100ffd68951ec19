// EvaluationTable: one row of confusion counts per image, summed over ranks in one
// all-reduce; the pooled scores come from the column sums.
#include "infer/evaluation.h"

#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "dist/communicator.h"
#include "train/metrics.h"

namespace dpunet::infer {
namespace {

// Mean of the values that are not NaN; NaN when there are none.
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

nlohmann::json scores(const train::ConfusionCounts& counts) {
  return {{"dice", counts.dice()},
          {"iou", counts.iou()},
          {"mean_dice", counts.mean_foreground_dice()},
          {"foreground_dice", counts.foreground_dice()}};
}

}  // namespace

EvaluationTable::EvaluationTable(int64_t images, int64_t classes)
    : classes_(classes), rows_(torch::zeros({images, (classes + 1) * 3 + 1}, torch::kDouble)) {
  DPUNET_CHECK(classes >= 1 && images >= 0, "evaluation: ", images, " images of ", classes, " classes");
}

void EvaluationTable::add(int64_t index, const torch::Tensor& probabilities, const torch::Tensor& mask) {
  DPUNET_CHECK(index >= 0 && index < rows_.size(0), "evaluation: image ", index, " of ", rows_.size(0));
  train::ConfusionCounts counts(classes_);
  counts.add(probabilities.unsqueeze(0), mask.to(probabilities.device()).to(torch::kLong).unsqueeze(0));
  torch::Tensor row = rows_[index];
  row.slice(0, 0, row.size(0) - 1).copy_(counts.counts().flatten());
  row[-1] = 1.0;
}

void EvaluationTable::all_reduce(dist::Communicator& comm, const c10::Device& device) {
  torch::Tensor on_device = rows_.to(device);
  comm.all_reduce(on_device, dist::ReduceOp::kSum);
  rows_ = on_device.cpu();
}

int64_t EvaluationTable::evaluated() const {
  return static_cast<int64_t>(rows_.select(1, -1).sum().item<double>());
}

nlohmann::json EvaluationTable::report(const std::vector<std::string>& names) const {
  DPUNET_CHECK(static_cast<int64_t>(names.size()) == rows_.size(0), "evaluation: ", names.size(), " names for ",
               rows_.size(0), " images");
  const torch::Tensor counts = rows_.slice(1, 0, rows_.size(1) - 1);
  nlohmann::json per_image = nlohmann::json::array();
  std::vector<std::vector<double>> dice_by_class(static_cast<size_t>(classes_)), iou_by_class(dice_by_class);
  std::vector<double> foreground;
  for (int64_t i = 0; i < rows_.size(0); ++i) {
    if (rows_[i][-1].item<double>() == 0) continue;  // no mask known for this image
    const train::ConfusionCounts image(counts[i].view({classes_ + 1, 3}));
    nlohmann::json entry = scores(image);
    entry["name"] = names[static_cast<size_t>(i)];
    per_image.push_back(entry);
    const std::vector<double> dice = image.dice(), iou = image.iou();
    for (size_t k = 0; k < dice.size(); ++k) {
      dice_by_class[k].push_back(dice[k]);
      iou_by_class[k].push_back(iou[k]);
    }
    foreground.push_back(image.foreground_dice());
  }
  std::vector<double> mean_dice, mean_iou;
  for (size_t k = 0; k < dice_by_class.size(); ++k) {
    mean_dice.push_back(nan_mean(dice_by_class[k]));
    mean_iou.push_back(nan_mean(iou_by_class[k]));
  }
  // As nnU-Net's summary: each class averaged over the images that score it, then the
  // foreground classes averaged.
  const nlohmann::json image_mean = {
      {"dice", mean_dice},
      {"iou", mean_iou},
      {"mean_dice", nan_mean(std::vector<double>(mean_dice.begin() + 1, mean_dice.end()))},
      {"foreground_dice", nan_mean(foreground)}};
  nlohmann::json result = scores(train::ConfusionCounts(counts.sum(0).view({classes_ + 1, 3})));
  result["images"] = per_image.size();
  result["aggregation"] = "pooled";
  result["image_mean"] = image_mean;
  result["per_image"] = per_image;
  return result;
}

}  // namespace dpunet::infer
