// Turning stored pixels into the float values the network sees.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/sample.h"

namespace dpunet::data {

enum class Normalization {
  kDataset,   // (v - mean_c) / std_c with the shards' channel statistics
  kPerImage,  // each image's channels to zero mean, unit variance (a tile: its source image's)
  kNone,      // integers scaled to [0, 1] (uint8 / 255, uint16 / 65535), float as stored
};

Normalization parse_normalization(const std::string& name);
const char* normalization_name(Normalization normalization);

// A normalisation and, for kDataset, the statistics it uses. Validation and prediction
// must see inputs scaled like the training data, so they are given the training set's
// statistics; empty ones mean the statistics of the shards being read.
struct Normalizer {
  Normalizer(Normalization mode = Normalization::kDataset) : mode(mode) {}  // NOLINT: a mode alone is a Normalizer
  Normalization mode;
  std::vector<double> channel_mean, channel_std;  // in stored pixel units
  std::string pixel_type;                         // the units' pixel type; empty: not known
};

// Whether `normalizer`'s statistics are in the units of pixels stored as `type`; true
// when it has none or their pixel type is not known.
bool statistics_apply(const Normalizer& normalizer, PixelType type);

// Dataset normalisation of one channel as value * scale + shift. A constant channel
// (std below 1e-6 pixel units) is only centred: scaling by its zero spread would turn any
// other value, in validation or prediction, into about 1e8.
struct ChannelAffine {
  double scale = 1, shift = 0;
};
ChannelAffine dataset_affine(double mean, double std);
inline constexpr double kConstantChannelStd = 1e-6;

// Memory load_sample holds for one sample of `h`: its raw pixels, their float copy and
// its mask. A sample is loaded whole for each patch cut from it.
int64_t sample_load_bytes(const ShardHeader& h);

// Reads global sample `index` and converts it; `scratch` holds the raw pixels between
// calls so a worker allocates once.
Sample load_sample(const Dataset& dataset, int64_t index, const Normalizer& normalizer,
                   std::vector<unsigned char>& scratch);

}  // namespace dpunet::data
