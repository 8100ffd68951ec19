// One training sample as the loader's workers handle it: a float image, normalised,
// and its mask of class ids.
#pragma once

#include <cstdint>
#include <vector>

namespace dpunet::data {

struct Sample {
  int64_t index = -1;  // global index in the dataset
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> image;   // [C, H, W]
  std::vector<uint8_t> mask;  // [H, W]
};

}  // namespace dpunet::data
