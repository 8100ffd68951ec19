// Each channel's mean and (population) standard deviation over a whole image file: what
// per-image standardisation uses, for a file predicted whole and for the tiles
// `data import --tile` cuts from it, so that a tile is standardised as its image is.
#pragma once

#include <string>
#include <vector>

namespace dpunet::data {

struct ChannelStatistics {
  double mean = 0, std = 0;  // of the stored values
};

// From one pass over the file, a band of rows at a time (a slide is never held whole).
std::vector<ChannelStatistics> image_channel_statistics(const std::string& path);

}  // namespace dpunet::data
