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
// Optional: the mask value of pixels nobody labelled (sparse annotation), which add
// nothing to the loss or the scores.
inline constexpr const char* kIgnoreLabelAttribute = "ignore_label";
// Optional dataset [N, C, 2] float64: each sample's source image's channel mean and
// standard deviation (`data import --tile` writes it). Per-image normalisation
// standardises a tile with them, as prediction standardises the whole image file, not
// with the tile's own (a tile of glass and one of tissue would otherwise come out alike).
inline constexpr const char* kSourceStatisticsDataset = "source_statistics";
// The ignore label `dpunet data import` writes (`--mask-map VALUE=ignore`).
inline constexpr int kDefaultIgnoreLabel = 255;

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
  int ignore_label = -1;                 // in [n_classes, 255]; -1: every pixel is labelled
  // Per-channel statistics of the raw pixel values, for normalisation; empty when the
  // writer did not compute them.
  std::vector<double> channel_mean;
  std::vector<double> channel_std;

  int64_t pixels() const { return height * width; }
  int64_t image_values() const { return channels * height * width; }
  // A class id below n_classes, or the ignore label.
  bool valid_mask_value(uint8_t value) const { return value < n_classes || value == ignore_label; }
};

// Describes the parts two shards of one dataset must agree on ("C=1 H=64 W=64 uint8
// n_classes=3", and " ignore_label=255" when there is one).
std::string describe_layout(const ShardHeader& header);

// Refuses, naming `path`, a sample of 4 GiB or more: a shard stores each as one HDF5
// chunk, which must stay below 4 GiB, and a reader holds several at once.
void check_sample_size(const ShardHeader& header, const std::string& path);
// A shard without an ignore label (every pixel labelled) agrees with any.
bool same_layout(const ShardHeader& a, const ShardHeader& b);
// The class names a writer was given ("background", "cell"); empty where they are the
// defaults (class0, class1, ...), which say no more than the numbers.
std::vector<std::string> given_class_names(const ShardHeader& header);
// The class names as `data import --class-names` takes them: "background,cell".
std::string class_names_text(const ShardHeader& header);
// "" when two headers' class names can name one dataset's classes (the same, or either
// the defaults), else the first difference: "class 1 is 'tumour' in one and 'vessel' in
// the other". Class ids mean what the names say: two sets that name them apart would
// train one output on two things.
std::string class_names_conflict(const ShardHeader& a, const ShardHeader& b);
// "" when `value` is valid for the header, else why not: "mask label 7 >= n_classes 3"
// (naming the ignore label when there is one).
std::string invalid_mask_value(const ShardHeader& header, uint8_t value);
// "" when every value of one sample's image [C, H, W] (of the header's pixel type) is
// finite, else where the first NaN or infinity is: "channel C, pixel (Y, X) is nan".
// Only float32 images can hold one.
std::string find_non_finite(const ShardHeader& header, const void* image);

}  // namespace dpunet::data
