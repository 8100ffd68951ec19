// image_channel_statistics: sums about each channel's first value, in double.
#include "data/image_statistics.h"

#include <algorithm>
#include <cmath>

#include "data/image_io.h"

namespace dpunet::data {
namespace {

// Rows a file is read by for its statistics.
constexpr int64_t kStatisticsRows = 64;

}  // namespace

std::vector<ChannelStatistics> image_channel_statistics(const std::string& path) {
  ImageRows file(path);
  const int64_t channels = file.header().channels;
  // Sums of each value less the channel's first, in double: a slide's sum of squares of
  // 16-bit values would otherwise lose its variance to the square of its mean.
  std::vector<double> origin(static_cast<size_t>(channels)), sum(origin.size()), squares(origin.size());
  int64_t count = 0;
  file.for_each_band(kStatisticsRows, [&](const Image& band, int64_t top) {
    const int64_t pixels = band.height * band.width;
    for (int64_t c = 0; c < channels; ++c) {
      if (top == 0) origin[c] = band.values[c];
      double s = 0, q = 0;
      for (int64_t i = 0; i < pixels; ++i) {
        const double d = band.values[i * channels + c] - origin[c];
        s += d;
        q += d * d;
      }
      sum[c] += s;
      squares[c] += q;
    }
    count += pixels;
  });
  std::vector<ChannelStatistics> statistics(origin.size());
  for (int64_t c = 0; c < channels; ++c) {
    const double mean_offset = sum[c] / static_cast<double>(count);
    statistics[c].mean = origin[c] + mean_offset;
    statistics[c].std = std::sqrt(std::max(0.0, squares[c] / static_cast<double>(count) - mean_offset * mean_offset));
  }
  return statistics;
}

}  // namespace dpunet::data
