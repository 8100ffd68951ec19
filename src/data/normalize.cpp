// load_sample: read, convert to float, normalise.
#include "data/normalize.h"

#include <cmath>

#include "common/error.h"
#include "common/text.h"

namespace dpunet::data {
namespace {

template <typename T>
void convert(const T* raw, float* out, int64_t count, float scale, float shift) {
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(raw[i]) * scale + shift;
}

void convert_channel(const unsigned char* raw, PixelType type, float* out, int64_t count, float scale, float shift) {
  switch (type) {
    case PixelType::kUInt8: convert(raw, out, count, scale, shift); break;
    case PixelType::kUInt16: convert(reinterpret_cast<const uint16_t*>(raw), out, count, scale, shift); break;
    case PixelType::kFloat32: convert(reinterpret_cast<const float*>(raw), out, count, scale, shift); break;
  }
}

// To zero mean and unit variance by `mean` and `std`, or, without them, by the values'
// own. `values` are in stored units (per_image converts with scale 1, shift 0).
void standardise(float* values, int64_t count, const double* mean_and_std) {
  double mean = 0, std = 0;
  if (mean_and_std != nullptr) {
    mean = mean_and_std[0];
    std = mean_and_std[1];
  } else {
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < count; ++i) {
      sum += values[i];
      squares += static_cast<double>(values[i]) * values[i];
    }
    mean = sum / static_cast<double>(count);
    std = std::sqrt(std::max(0.0, squares / static_cast<double>(count) - mean * mean));
  }
  const float scale = static_cast<float>(1.0 / std::max(std, 1e-8));
  for (int64_t i = 0; i < count; ++i) values[i] = (values[i] - static_cast<float>(mean)) * scale;
}

}  // namespace

Normalization parse_normalization(const std::string& name) {
  if (name == "dataset") return Normalization::kDataset;
  if (name == "per_image") return Normalization::kPerImage;
  if (name == "none") return Normalization::kNone;
  DPUNET_FAIL("unknown normalisation '", name, "' (expected dataset, per_image or none)");
}

const char* normalization_name(Normalization normalization) {
  switch (normalization) {
    case Normalization::kDataset: return "dataset";
    case Normalization::kPerImage: return "per_image";
    case Normalization::kNone: return "none";
  }
  return "?";
}

bool statistics_apply(const Normalizer& normalizer, PixelType type) {
  return normalizer.channel_mean.empty() || normalizer.pixel_type.empty() ||
         normalizer.pixel_type == pixel_type_name(type);
}

ChannelAffine dataset_affine(double mean, double std) {
  ChannelAffine a;
  a.scale = std >= kConstantChannelStd ? 1.0 / std : 1.0;
  a.shift = -mean * a.scale;
  return a;
}

int64_t sample_load_bytes(const ShardHeader& h) {
  return h.image_values() * (pixel_type_bytes(h.pixel_type) + static_cast<int64_t>(sizeof(float))) + h.pixels();
}

Sample load_sample(const Dataset& dataset, int64_t index, const Normalizer& normalizer,
                   std::vector<unsigned char>& scratch) {
  const ShardHeader& h = dataset.header();
  const Normalization normalization = normalizer.mode;
  const bool given = !normalizer.channel_mean.empty();
  const std::vector<double>& means = given ? normalizer.channel_mean : h.channel_mean;
  const std::vector<double>& deviations = given ? normalizer.channel_std : h.channel_std;
  DPUNET_CHECK(normalization != Normalization::kDataset || (static_cast<int64_t>(means.size()) == h.channels &&
                                                            static_cast<int64_t>(deviations.size()) == h.channels),
               "normalisation statistics for ", means.size(), " channels, but the images have ", h.channels);
  DPUNET_CHECK(normalization != Normalization::kDataset || statistics_apply(normalizer, h.pixel_type),
               "normalisation statistics measured on ", normalizer.pixel_type, " pixels, but the images are ",
               pixel_type_name(h.pixel_type), " (data.stats_pixel_type)");
  Sample sample;
  sample.index = index;
  sample.channels = h.channels;
  sample.height = h.height;
  sample.width = h.width;
  const int bytes = pixel_type_bytes(h.pixel_type);
  try {
    scratch.resize(static_cast<size_t>(h.image_values()) * bytes);
    sample.image.resize(static_cast<size_t>(h.image_values()));
    sample.mask.resize(static_cast<size_t>(h.pixels()));
  } catch (const std::bad_alloc&) {
    // A whole slide imported untiled, loaded by several loader threads at once: said
    // with the way out, not as a bare std::bad_alloc.
    DPUNET_FAIL(dataset.describe_image(index), ": loading this ", h.height, "x", h.width, " sample whole (",
                mebibytes(sample_load_bytes(h)), ", as every patch cut from it needs) ran out of memory beside the ",
                "other loader threads' samples: cut the images into tiles at import (dpunet data import --tile T), ",
                "or lower data.workers");
  }
  dataset.read(index, scratch.data(), sample.mask.data());
  // Float shards written by other tools may hold NaN or inf: one such value makes the
  // loss, and after one step every weight, NaN.
  const std::string non_finite = find_non_finite(h, scratch.data());
  DPUNET_CHECK(non_finite.empty(), dataset.describe_image(index), ": ", non_finite,
               "; training and prediction need finite pixel values");

  const int64_t pixels = h.pixels();
  // A tile cut from a larger image is standardised as its image (as predict does a file).
  const double* source = normalization == Normalization::kPerImage ? dataset.source_statistics(index) : nullptr;
  for (int64_t c = 0; c < h.channels; ++c) {
    float scale = 1.0f, shift = 0.0f;
    if (normalization == Normalization::kDataset) {
      const ChannelAffine a = dataset_affine(means[c], deviations[c]);
      scale = static_cast<float>(a.scale);
      shift = static_cast<float>(a.shift);
    } else if (normalization == Normalization::kNone) {
      if (h.pixel_type == PixelType::kUInt8) scale = 1.0f / 255.0f;
      if (h.pixel_type == PixelType::kUInt16) scale = 1.0f / 65535.0f;
    }
    float* out = sample.image.data() + c * pixels;
    convert_channel(scratch.data() + c * pixels * bytes, h.pixel_type, out, pixels, scale, shift);
    if (normalization == Normalization::kPerImage) standardise(out, pixels, source ? source + 2 * c : nullptr);
  }
  return sample;
}

}  // namespace dpunet::data
