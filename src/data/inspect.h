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

// Prints the report to `out`; returns the number of bad samples found (0 without verify).
int64_t inspect_dataset(const std::string& spec, const InspectOptions& options, std::ostream& out);

}  // namespace dpunet::data
