// Synthetic cell-segmentation data, like the U-Net paper's touching-cells task:
// textured background, overlapping blob-shaped cells, blur and noise; masks with
// background, cell and (with 3 classes) the border between touching cells.
// Deterministic for a (seed, sample index) pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace dpunet::data {

struct SynthOptions {
  int64_t samples = 64;
  int shards = 2;
  int64_t height = 128, width = 128;
  int64_t channels = 1;
  PixelType pixel_type = PixelType::kUInt8;
  int n_classes = 3;  // 2: background/cell (borders count as background), 3: + border
  int gzip_level = 0;
  uint64_t seed = 0;
  std::string prefix = "train";  // files are <prefix>-00000.h5, <prefix>-00001.h5, ...
  int64_t first_index = 0;       // sample i of the set is generated as index first_index + i
};

// Renders one sample: image [C, H, W] in [0, 1], mask [H, W] class ids.
void render_synthetic_sample(const SynthOptions& options, int64_t index, std::vector<float>& image,
                             std::vector<uint8_t>& mask);

// Writes the shards into `directory` (created if missing); returns their paths.
std::vector<std::string> write_synthetic_dataset(const std::string& directory, const SynthOptions& options);

}  // namespace dpunet::data
