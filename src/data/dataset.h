// A dataset is a set of shards that agree on C, H, W, pixel type, n_classes and ignore
// label (where they have one), seen through one global sample index (shard after shard,
// in the order they are listed).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard_format.h"
#include "data/shard_reader.h"

namespace dpunet::data {

// The shard files a dataset spec names: a directory (every *.h5 in it, sorted), a glob
// pattern ("shards/train-*.h5"), an index file (*.txt: one shard path per line,
// relative to the index file; '#' starts a comment) or one .h5 file.
std::vector<std::string> resolve_shards(const std::string& spec);
// A shard an index file `spec` lists but that is missing: refused naming both (an index
// names its shards unchecked, so that they are said where opened).
void require_listed_shard(const std::string& path, const std::string& spec);
// What a shell glob pattern matches, sorted; empty when nothing does. A folder part that
// exists as written is taken literally, even with [ ] * ? in its name.
std::vector<std::string> glob_paths(const std::string& pattern);

// The set a shard written by `data synth` or `data import` belongs to: "train" for
// train-00003.h5, "val", "fold2" for fold2-00000.h5; empty for other names.
std::string written_set_of(const std::string& shard);

class Dataset {
 public:
  explicit Dataset(const std::string& spec);
  explicit Dataset(const std::vector<std::string>& shard_paths);

  int64_t size() const { return header_.samples; }
  // The common layout; `samples` is the total and the channel statistics combine all shards.
  const ShardHeader& header() const { return header_; }
  const std::vector<std::unique_ptr<ShardReader>>& shards() const { return shards_; }

  // Reads global sample `index` (see ShardReader::read for the buffers).
  void read(int64_t index, void* image, uint8_t* mask) const;
  // Global sample `index`'s source image's channel statistics (ShardReader's), or nullptr.
  const double* source_statistics(int64_t index) const;
  // Which shard holds global sample `index`, and where in it.
  std::pair<const ShardReader*, int64_t> locate(int64_t index) const;
  // "SHARD: sample I of 'images'", for messages about global sample `index`'s image.
  std::string describe_image(int64_t index) const;

 private:
  void open(const std::vector<std::string>& shard_paths, const std::string& spec);

  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<int64_t> first_index_;  // global index of each shard's sample 0
  ShardHeader header_;
};

}  // namespace dpunet::data
