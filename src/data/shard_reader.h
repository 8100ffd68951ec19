// Reads samples from one shard. Opening checks everything a training run relies on
// (datasets, ranks, dtypes, attributes) and names the file in every error; reading a
// sample checks its labels against n_classes and names the sample index.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/h5_handle.h"
#include "data/shard_format.h"

namespace dpunet::data {

class ShardReader {
 public:
  explicit ShardReader(std::string path);

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  // How 'images' is stored: "chunks [1, 1, 572, 572], gzip" or "contiguous".
  const std::string& storage() const { return images_.storage; }

  // image: header().image_values() pixels of header().pixel_type, [C, H, W];
  // mask: header().pixels() class ids, [H, W]. Safe to call from several threads.
  void read(int64_t index, void* image, uint8_t* mask) const;
  // Sample `index`'s source image's C pairs (mean, std) (kSourceStatisticsDataset), or
  // nullptr when the shard has none.
  const double* source_statistics(int64_t index) const {
    return source_statistics_.empty() ? nullptr
                                      : source_statistics_.data() + static_cast<size_t>(index * header_.channels * 2);
  }

 private:
  struct Dataset {
    H5Handle id;
    bool raw_chunks = false;  // one sample per chunk, deflate or nothing, little-endian
    bool deflated = false;
    std::string storage;
  };
  Dataset open_dataset(const char* name, int rank, const std::string& what);
  // Refuses a virtual dataset with a source file that is not there.
  void check_virtual_sources(hid_t properties, const char* name) const;
  void read_into(const Dataset& dataset, int64_t index, int rank, hid_t memory_type, void* out, size_t bytes,
                 const char* name) const;
  void check_labels(int64_t index, const uint8_t* mask) const;
  void read_source_statistics();

  std::string path_;
  ShardHeader header_;
  H5Handle file_;
  Dataset images_, masks_;
  std::vector<double> source_statistics_;  // [N, C, 2], or empty
};

}  // namespace dpunet::data
