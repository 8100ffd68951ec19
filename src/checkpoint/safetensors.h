// The safetensors format (8-byte little-endian header length, a JSON header mapping each
// tensor name to dtype, shape and data_offsets, then the raw little-endian bytes), so
// weights move between dpunet and PyTorch. The reader checks every field before it
// trusts it: header length, JSON, dtypes, shapes, and offsets that must tile the data
// buffer exactly (in bounds, no overlap, no gap).
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dpunet::checkpoint {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes `tensors` (any device; copied to CPU, contiguous) in the given order.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Reads every tensor onto the CPU, in file order; throws naming `path` and the problem.
NamedTensors read_safetensors(const std::string& path);
// Only the header's __metadata__ map (empty when there is none); throws like
// read_safetensors when the header is malformed.
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
// The same from bytes already in memory; `source` names them in errors.
NamedTensors parse_safetensors(const std::string& bytes, const std::string& source);

}  // namespace dpunet::checkpoint
