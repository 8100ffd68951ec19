// What `dpunet predict` reads: HDF5 shards (with their masks) or PNG/TIFF images (with
// optional masks from a folder, matched by file name), one item at a time so that only
// one image is in memory.
#pragma once

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/normalize.h"

namespace dpunet::infer {

struct InputItem {
  std::string name;     // for output files: the image's stem, or "sample-000012"
  torch::Tensor image;  // [C, H, W] float, normalised
  torch::Tensor mask;   // [H, W] uint8 class ids; undefined when none is known
  torch::Tensor raw;    // [C, H, W] uint8 display copy for overlays
};

class InputSet {
 public:
  // `input`: a shard dataset spec (directory of .h5, glob, .txt index, .h5) or an image
  // file or a folder of images; `masks_dir` pairs image files with masks.
  // `normalizer`: the model's; without statistics, `dataset` normalisation uses the
  // shards' own, and image files (which carry none) are standardised one by one.
  InputSet(const std::string& input, const std::string& masks_dir, data::Normalizer normalizer);

  int64_t size() const;
  InputItem load(int64_t index) const;
  int64_t channels() const;

 private:
  // Says once that the model's statistics are in other units than the inputs'.
  void warn_other_units(const std::string& pixel_type, const std::string& instead) const;

  std::string input_;
  std::shared_ptr<const data::Dataset> dataset_;
  std::vector<std::string> images_;
  std::string masks_dir_;
  data::Normalizer normalizer_;
  mutable bool warned_ = false;
};

}  // namespace dpunet::infer
