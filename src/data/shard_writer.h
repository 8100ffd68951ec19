// Writes one shard (shard_format.h). The file is written under a temporary name and
// renamed into place by finish(), so an interrupted writer never leaves a shard that
// looks complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/h5_handle.h"
#include "data/shard_format.h"

namespace dpunet::data {

struct ShardWriteOptions {
  int gzip_level = 0;  // 0: no compression; 1-9: deflate level
};

class ShardWriter {
 public:
  // `header.samples` fixes N; channel_mean/std are computed from the samples written
  // unless the header already holds them.
  ShardWriter(std::string path, ShardHeader header, ShardWriteOptions options = {});
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // image: [C, H, W] values of the header's pixel type; mask: [H, W] class ids;
  // source_statistics: none, or C pairs (mean, std) of the image the sample was cut from
  // (kSourceStatisticsDataset), given for every sample or for none.
  void write(int64_t index, const void* image, const uint8_t* mask, const double* source_statistics = nullptr);
  // Writes the attributes, closes the file and renames it into place.
  void finish();
  // Samples written so far.
  int64_t written() const { return written_; }

 private:
  void accumulate_statistics(const void* image);
  void write_source_statistics();

  std::string path_;
  std::string temporary_path_;
  ShardHeader header_;
  bool statistics_given_;
  // Per channel, of the values less shift_ (the first sample's mean): sums of values near
  // their mean stay small, and the variance exact (E[x^2] - E[x]^2 of a 16-bit channel at
  // 60000 with a spread of 0.5 lost a fifth of its spread to rounding).
  std::vector<double> sum_, sum_squares_, shift_;
  int64_t written_ = 0;
  std::vector<double> source_statistics_;  // [N, C, 2], filled as samples come
  int64_t sources_given_ = 0;
  H5Handle file_, images_, masks_;
};

}  // namespace dpunet::data
