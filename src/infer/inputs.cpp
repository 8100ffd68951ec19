// InputSet: shards or image files.
#include "infer/inputs.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "data/image_io.h"

namespace dpunet::infer {
namespace fs = std::filesystem;
namespace {

// Display copy scaled to 8 bits, [C, H, W].
torch::Tensor display_copy(const torch::Tensor& values) {
  const torch::Tensor v = values.to(torch::kFloat);
  const double low = v.min().item<double>(), high = v.max().item<double>();
  return ((v - low) * (255.0 / std::max(high - low, 1e-12))).round().clamp(0, 255).to(torch::kByte);
}

// [C, H, W] stored values to network inputs, as load_sample does for shards.
torch::Tensor normalise(torch::Tensor image, const data::Normalizer& normalizer, int bits) {
  image = image.to(torch::kFloat);
  if (normalizer.mode == data::Normalization::kNone) return image / (bits == 16 ? 65535.0 : 255.0);
  if (normalizer.mode == data::Normalization::kDataset && !normalizer.channel_mean.empty()) {
    DPUNET_CHECK(static_cast<int64_t>(normalizer.channel_mean.size()) == image.size(0),
                 "the model's statistics are for ", normalizer.channel_mean.size(), " channels, the image has ",
                 image.size(0));
    const auto channels = static_cast<int64_t>(normalizer.channel_mean.size());
    const torch::Tensor mean = torch::tensor(normalizer.channel_mean, torch::kDouble).reshape({channels, 1, 1});
    const torch::Tensor std = torch::tensor(normalizer.channel_std, torch::kDouble).reshape({channels, 1, 1});
    const torch::Tensor scale = (1.0 / std.clamp_min(1e-8)).to(torch::kFloat);
    return image * scale + (-mean).to(torch::kFloat) * scale;
  }
  // per_image, or dataset normalisation without known statistics.
  const torch::Tensor mean = image.mean({1, 2}, true), std = image.std({1, 2}, false, true).clamp_min(1e-8);
  return (image - mean) / std;
}

}  // namespace

InputSet::InputSet(const std::string& input, const std::string& masks_dir, data::Normalizer normalizer)
    : input_(input), masks_dir_(masks_dir), normalizer_(std::move(normalizer)) {
  std::error_code ec;
  const bool image_file = fs::is_regular_file(input, ec) && data::is_image_file(input);
  bool image_folder = false;
  if (fs::is_directory(input, ec)) {
    for (const auto& entry : fs::directory_iterator(input)) {
      if (entry.is_regular_file() && data::is_image_file(entry.path().string()))
        images_.push_back(entry.path().string());
    }
    image_folder = !images_.empty();
  }
  if (image_file) images_ = {input};
  if (image_file || image_folder) {
    std::sort(images_.begin(), images_.end());
    return;
  }
  dataset_ = std::make_shared<const data::Dataset>(input);
  if (!data::statistics_apply(normalizer_, dataset_->header().pixel_type)) {
    warn_other_units(data::pixel_type_name(dataset_->header().pixel_type), "the shards' own statistics");
    normalizer_.channel_mean.clear();
    normalizer_.channel_std.clear();
  }
}

void InputSet::warn_other_units(const std::string& pixel_type, const std::string& instead) const {
  if (warned_) return;
  warned_ = true;
  std::fprintf(stderr,
               "predict: the model's normalisation statistics were measured on %s pixels, %s holds %s; using %s\n",
               normalizer_.pixel_type.c_str(), input_.c_str(), pixel_type.c_str(), instead.c_str());
}

int64_t InputSet::size() const {
  return dataset_ ? dataset_->size() : static_cast<int64_t>(images_.size());
}

int64_t InputSet::channels() const {
  if (dataset_) return dataset_->header().channels;
  return data::read_image(images_.front()).channels;
}

InputItem InputSet::load(int64_t index) const {
  InputItem item;
  if (dataset_) {
    std::vector<unsigned char> scratch;
    const data::Sample s = data::load_sample(*dataset_, index, normalizer_, scratch);
    item.image = torch::from_blob(const_cast<float*>(s.image.data()), {s.channels, s.height, s.width}).clone();
    item.mask = torch::from_blob(const_cast<uint8_t*>(s.mask.data()), {s.height, s.width}, torch::kByte).clone();
    item.raw = display_copy(item.image);
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06lld", static_cast<long long>(index));
    item.name = name;
    return item;
  }
  const std::string& path = images_[static_cast<size_t>(index)];
  const data::Image image = data::read_image(path);
  torch::Tensor values = torch::empty({image.height, image.width, image.channels}, torch::kInt);
  std::copy(image.values.begin(), image.values.end(), values.data_ptr<int32_t>());
  values = values.permute({2, 0, 1}).contiguous();  // [C, H, W]
  item.raw = display_copy(values);
  data::Normalizer normalizer = normalizer_;
  const data::PixelType type = image.bits == 16 ? data::PixelType::kUInt16 : data::PixelType::kUInt8;
  if (!data::statistics_apply(normalizer, type)) {
    warn_other_units(data::pixel_type_name(type), "per-image standardisation");
    normalizer.channel_mean.clear();
    normalizer.channel_std.clear();
  }
  item.image = normalise(values, normalizer, image.bits);
  item.name = fs::path(path).stem().string();
  if (!masks_dir_.empty()) {
    for (const char* ext : {".png", ".tif", ".tiff"}) {
      const fs::path candidate = fs::path(masks_dir_) / (item.name + ext);
      if (!fs::exists(candidate)) continue;
      const data::Image mask = data::read_image(candidate.string());
      DPUNET_CHECK(mask.channels == 1 && mask.height == image.height && mask.width == image.width, candidate.string(),
                   ": the mask must be a grey image of the same size as ", path);
      torch::Tensor m = torch::empty({mask.height, mask.width}, torch::kInt);
      std::copy(mask.values.begin(), mask.values.end(), m.data_ptr<int32_t>());
      item.mask = m.to(torch::kByte);
      break;
    }
  }
  return item;
}

}  // namespace dpunet::infer
