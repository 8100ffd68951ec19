// The on-disk shard format (docs/data-format.md): one HDF5 file per shard with
// `images` [N, C, H, W] and `masks` [N, H, W], one sample per chunk, and file
// attributes that describe the dataset. ShardHeader is what a shard says about itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::data {

inline constexpr int kShardFormatVersion = 1;
inline constexpr const char* kImagesDataset = "images";
inline constexpr const char* kMasksDataset = "masks";
inline constexpr const char* kVersionAttribute = "dpunet_format_version";
inline constexpr const char* kClassesAttribute = "n_classes";
inline constexpr const char* kClassNamesAttribute = "class_names";
inline constexpr const char* kMeanAttribute = "channel_mean";
inline constexpr const char* kStdAttribute = "channel_std";

enum class PixelType { kUInt8, kUInt16, kFloat32 };

const char* pixel_type_name(PixelType type);
// Parses "uint8", "uint16" or "float32"; throws naming the accepted values otherwise.
PixelType parse_pixel_type(const std::string& name);
int pixel_type_bytes(PixelType type);

struct ShardHeader {
  int64_t samples = 0;   // N
  int64_t channels = 0;  // C
  int64_t height = 0;    // H
  int64_t width = 0;     // W
  PixelType pixel_type = PixelType::kUInt8;
  int n_classes = 2;
  std::vector<std::string> class_names;  // n_classes entries
  // Per-channel statistics of the raw pixel values, for normalisation; empty when the
  // writer did not compute them.
  std::vector<double> channel_mean;
  std::vector<double> channel_std;

  int64_t pixels() const { return height * width; }
  int64_t image_values() const { return channels * height * width; }
};

// Describes the parts two shards of one dataset must agree on ("C=1 H=64 W=64 uint8 n_classes=3").
std::string describe_layout(const ShardHeader& header);
bool same_layout(const ShardHeader& a, const ShardHeader& b);
// "" when every value of one sample's image [C, H, W] (of the header's pixel type) is
// finite, else where the first NaN or infinity is: "channel C, pixel (Y, X) is nan".
// Only float32 images can hold one.
std::string find_non_finite(const ShardHeader& header, const void* image);

}  // namespace dpunet::data
