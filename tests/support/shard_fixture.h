// Shards with known contents for the data tests, and raw HDF5 files that break the
// format in one way each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace dpunet::test {

// Pixel p of channel c of sample i holds (i * 7 + c * 3 + p) % 251 (any pixel type);
// the mask holds (i + p) % n_classes.
uint8_t known_pixel(int64_t sample, int64_t channel, int64_t pixel);
uint8_t known_label(int64_t sample, int64_t pixel, int n_classes);

// Writes a shard whose global sample indices start at `first`.
void write_known_shard(const std::string& path, int64_t samples, int64_t first = 0, int64_t channels = 1,
                       int64_t size = 8, data::PixelType type = data::PixelType::kUInt8, int n_classes = 3,
                       int gzip_level = 0);

// Writes an HDF5 file with the given datasets (uint8 unless `image_type` says
// otherwise) and, when `attributes` is set, the shard attributes. The caller breaks one
// thing at a time.
struct RawShard {
  std::vector<unsigned long long> image_dims = {2, 1, 8, 8};
  std::vector<unsigned long long> mask_dims = {2, 8, 8};
  bool write_images = true, write_masks = true, attributes = true;
  bool int32_images = false;
  bool int64_masks = false;      // numpy's default integer, as an h5py file may hold
  bool images_as_group = false;  // 'images' a group, not a dataset
  int image_filter = 0;          // an HDF5 filter id on one-sample chunks of images, as optional (h5py's LZF: 32000)
  uint8_t mask_value = 0;
  int n_classes = 3;
  int ignore_label = -1;
  double channel_mean = 10.0, channel_std = 1.0;  // every channel's statistics, as stored
  // 'images' created but not (all) written, as a file filled part way is: contiguous and
  // never written, or in chunks of one sample of which only the first was written.
  enum class Unwritten { kNone, kContiguous, kChunksAfterFirst } unwritten_images = Unwritten::kNone;
  // How class_names is stored: as dpunet writes it, or as h5py does for str / numpy bytes.
  enum class Names { kAsciiVariable, kUtf8Variable, kFixedLength } names = Names::kAsciiVariable;
};
void write_raw_shard(const std::string& path, const RawShard& spec);

}  // namespace dpunet::test
