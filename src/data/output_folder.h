// The folder a dataset writer (`data synth`, `data import`) fills: shards already there
// under the same names would be overwritten, and higher-numbered ones would stay and
// mix two datasets under one glob, so they are refused unless overwriting was asked for.
#pragma once

#include <string>
#include <vector>

namespace dpunet::data {

// The files PREFIX-NNNNN.h5 in `directory` for any of `prefixes`, sorted.
std::vector<std::string> existing_shards(const std::string& directory, const std::vector<std::string>& prefixes);

// Without `overwrite`, an error naming the shards found and the flag to pass; with it,
// removes them so that only the new dataset's shards remain.
void clear_output_folder(const std::string& directory, const std::vector<std::string>& prefixes, bool overwrite);

// A dataset writer's shards go into a hidden folder inside `directory` and move in only
// once all of them were written: a writer that fails halfway (a mask value without a
// class, an unreadable image, a full disk) leaves `directory` as it was, the dataset
// --overwrite would have replaced included, instead of half of a new dataset.
class StagedOutput {
 public:
  // Refuses existing shards without `overwrite` (clear_output_folder's error) before
  // anything is written; creates `directory` and the staging folder.
  StagedOutput(std::string directory, std::vector<std::string> prefixes, bool overwrite);
  // Without commit(): removes the staging folder, and `directory` when this made it.
  ~StagedOutput();
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  // Where the writers write.
  const std::string& staging() const { return staging_; }
  // Removes the old shards (with `overwrite`) and moves `staged` (files in staging())
  // into the directory; returns their new paths, in order.
  std::vector<std::string> commit(const std::vector<std::string>& staged);

 private:
  std::string directory_, staging_;
  std::vector<std::string> prefixes_;
  bool overwrite_ = false, made_directory_ = false, committed_ = false;
};

}  // namespace dpunet::data
