// EvaluationTable: one row of confusion counts per image, summed over ranks in one
// all-reduce; the pooled scores come from the column sums.
#include "infer/evaluation.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "dist/communicator.h"
#include "train/metrics.h"

namespace dpunet::infer {
namespace {

nlohmann::json scores(const train::ConfusionCounts& counts) {
  return {{"dice", counts.dice()},
          {"iou", counts.iou()},
          {"mean_dice", counts.mean_foreground_dice()},
          {"foreground_dice", counts.foreground_dice()}};
}

}  // namespace

EvaluationTable::EvaluationTable(int64_t images, int64_t classes, int64_t ignore_label)
    : classes_(classes),
      ignore_label_(ignore_label),
      rows_(torch::zeros({images, (classes + 1) * 3 + 1}, torch::kDouble)) {
  DPUNET_CHECK(classes >= 1 && images >= 0, "evaluation: ", images, " images of ", classes, " classes");
}

void EvaluationTable::add(int64_t index, const torch::Tensor& predicted, const torch::Tensor& mask) {
  DPUNET_CHECK(index >= 0 && index < rows_.size(0), "evaluation: image ", index, " of ", rows_.size(0));
  train::ConfusionCounts counts(classes_, ignore_label_);
  // A band of rows at a time: counting takes several 8-byte values per pixel (ids, cells,
  // weights), which for a slide's whole mask would be gigabytes beside its one byte.
  const int64_t height = predicted.size(0), width = std::max<int64_t>(predicted.size(1), 1);
  const int64_t band = std::max<int64_t>(1, (int64_t{1} << 20) / width);
  for (int64_t top = 0; top < height; top += band) {
    const int64_t rows = std::min(band, height - top);
    counts.add_predicted(predicted.narrow(0, top, rows).unsqueeze(0),
                         mask.narrow(0, top, rows).to(predicted.device()).to(torch::kLong).unsqueeze(0));
  }
  // A mask with no labelled pixel (all of it the ignore label) scores nothing: the image
  // is left out, as one without a mask is, not counted as scored with every score null.
  const torch::Tensor per_class = counts.counts().slice(0, 0, classes_);
  const double labelled = (per_class.select(1, 0) + per_class.select(1, 2)).sum().item<double>();  // tp + fn
  if (labelled == 0) return;
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
  const torch::Tensor table = rows_.contiguous();
  const auto rows = table.accessor<double, 2>();
  const int64_t scored_column = table.size(1) - 1;
  nlohmann::json per_image = nlohmann::json::array();
  std::vector<std::vector<double>> dice_by_class(static_cast<size_t>(classes_)), iou_by_class(dice_by_class);
  std::vector<double> foreground;
  for (int64_t i = 0; i < table.size(0); ++i) {
    if (rows[i][scored_column] == 0) continue;  // no mask known for this image
    // Row i holds tp, fp, fn of class 0, 1, ..., then of any foreground class.
    auto score = [&](int64_t k, double (*formula)(double, double, double)) {
      return formula(rows[i][3 * k], rows[i][3 * k + 1], rows[i][3 * k + 2]);
    };
    std::vector<double> dice, iou;
    for (int64_t k = 0; k < classes_; ++k) {
      dice.push_back(score(k, train::dice_score));
      iou.push_back(score(k, train::iou_score));
      dice_by_class[static_cast<size_t>(k)].push_back(dice.back());
      iou_by_class[static_cast<size_t>(k)].push_back(iou.back());
    }
    foreground.push_back(score(classes_, train::dice_score));
    per_image.push_back({{"name", names[static_cast<size_t>(i)]},
                         {"dice", dice},
                         {"iou", iou},
                         {"mean_dice", train::nan_mean(std::vector<double>(dice.begin() + 1, dice.end()))},
                         {"foreground_dice", foreground.back()}});
  }
  std::vector<double> mean_dice, mean_iou;
  for (size_t k = 0; k < dice_by_class.size(); ++k) {
    mean_dice.push_back(train::nan_mean(dice_by_class[k]));
    mean_iou.push_back(train::nan_mean(iou_by_class[k]));
  }
  // As nnU-Net's summary: each class averaged over the images that score it, then the
  // foreground classes averaged.
  const nlohmann::json image_mean = {
      {"dice", mean_dice},
      {"iou", mean_iou},
      {"mean_dice", train::nan_mean(std::vector<double>(mean_dice.begin() + 1, mean_dice.end()))},
      {"foreground_dice", train::nan_mean(foreground)}};
  const torch::Tensor counts = table.slice(1, 0, scored_column);
  nlohmann::json result = scores(train::ConfusionCounts(counts.sum(0).view({classes_ + 1, 3})));
  result["images"] = per_image.size();
  result["aggregation"] = "pooled";
  result["image_mean"] = image_mean;
  result["per_image"] = per_image;
  return result;
}

}  // namespace dpunet::infer
