// ImageFileRows and per-image standardisation from one pass over a file.
#include "infer/image_file_rows.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>

#include "common/error.h"
#include "data/image_statistics.h"
#include "infer/display_stretch.h"

namespace dpunet::infer {
std::vector<ChannelConversion> conversions(const std::vector<data::ChannelAffine>& affine) {
  std::vector<ChannelConversion> converted;
  for (const data::ChannelAffine& a : affine) {
    converted.push_back({0.0f, static_cast<float>(a.scale), static_cast<float>(a.shift)});
  }
  return converted;
}

ImageFileRows::ImageFileRows(const std::string& path, std::vector<ChannelConversion> conversion, bool keep_display)
    : file_(path), conversion_(std::move(conversion)), keep_display_(keep_display) {
  DPUNET_CHECK(static_cast<int64_t>(conversion_.size()) == channels(), path, ": normalisation for ", conversion_.size(),
               " channels, the image has ", channels());
  if (keep_display_) {
    const bool eight_bit = file_.header().bits <= 8;
    const auto pixels = static_cast<size_t>(height() * width());
    try {
      eight_bit ? first_channel8_.reserve(pixels) : first_channel16_.reserve(pixels);
    } catch (const std::exception&) {  // bad_alloc, or length_error past what a vector holds
      DPUNET_FAIL(path, ": a ", width(), "x", height(), " image's display copy takes ",
                  (eight_bit ? 1.0 : 2.0) * static_cast<double>(pixels) / 1e9,
                  " GB, more than this machine has free (is its header damaged?)");
    }
  }
}

torch::Tensor ImageFileRows::read(int64_t count) {
  const int64_t c_count = channels(), w = width();
  DPUNET_CHECK(count >= 0 && file_.rows_read() + count <= height(), file_.path(), ": rows ", file_.rows_read(), " to ",
               file_.rows_read() + count, " asked of a ", height(), "-row image");
  band_.resize(static_cast<size_t>(count * w * c_count));
  file_.read(count, band_.data());
  torch::Tensor rows = torch::empty({c_count, count, w}, torch::kFloat);
  float* out = rows.data_ptr<float>();
  const uint16_t* stored = band_.data();
  const int64_t plane = count * w;
  at::parallel_for(0, plane, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t c = 0; c < c_count; ++c) {
      const ChannelConversion k = conversion_[c];
      for (int64_t i = begin; i < end; ++i) {
        out[c * plane + i] = (static_cast<float>(stored[i * c_count + c]) - k.centre) * k.scale + k.shift;
      }
    }
  });
  if (keep_display_ && file_.header().bits <= 8) {
    for (int64_t i = 0; i < plane; ++i) first_channel8_.push_back(static_cast<uint8_t>(stored[i * c_count]));
  } else if (keep_display_) {
    for (int64_t i = 0; i < plane; ++i) first_channel16_.push_back(stored[i * c_count]);
  }
  return rows;
}

torch::Tensor ImageFileRows::display() {
  if (!keep_display_) return {};
  DPUNET_CHECK(file_.rows_read() == height(), file_.path(), ": the display copy asked for after ", file_.rows_read(),
               " of ", height(), " rows");
  return file_.header().bits <= 8 ? stretch(first_channel8_) : stretch(first_channel16_);
}

template <typename T>
torch::Tensor ImageFileRows::stretch(std::vector<T>& values) const {
  if constexpr (std::is_same_v<T, uint8_t>) {
    stretch_to_bytes(values.data(), height() * width(), values.data());  // where it lies: no second copy
    // Handed over without a copy: the tensor owns the vector from here.
    auto owned = std::make_unique<std::vector<uint8_t>>(std::move(values));
    torch::Tensor held = torch::from_blob(
        owned->data(), {1, height(), width()}, [vector = owned.get()](void*) { delete vector; }, torch::kByte);
    owned.release();  // the tensor's deleter frees it now
    return held;
  } else {
    torch::Tensor display = torch::empty({1, height(), width()}, torch::kByte);
    stretch_to_bytes(values.data(), height() * width(), display.data_ptr<uint8_t>());
    values = {};  // asked for once: its memory goes back now
    return display;
  }
}

std::vector<ChannelConversion> standardisation(const std::string& path) {
  std::vector<ChannelConversion> conversion;
  for (const data::ChannelStatistics& channel : data::image_channel_statistics(path)) {
    // As training's per-image standardisation: a constant channel becomes zeros.
    conversion.push_back({static_cast<float>(channel.mean), static_cast<float>(1.0 / std::max(channel.std, 1e-8))});
  }
  return conversion;
}

}  // namespace dpunet::infer
