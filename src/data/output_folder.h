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

}  // namespace dpunet::data
