// `dpunet data inspect`: what a dataset holds (shards, layout, chunking, value ranges,
// class frequencies) and, with verify, which samples cannot be read.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace dpunet::data {

struct InspectOptions {
  int64_t max_samples = 256;  // statistics from at most this many samples, spread evenly
  bool verify = false;        // read every sample and list the bad ones
};

struct InspectResult {
  int64_t bad_samples = 0;  // verify only
  int64_t bad_shards = 0;   // verify only: shards that could not be opened or disagree (without verify, an error)
};

// Prints the report to `out`.
InspectResult inspect_dataset(const std::string& spec, const InspectOptions& options, std::ostream& out);

}  // namespace dpunet::data
