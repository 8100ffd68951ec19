// Which gradients share an all-reduce: parameters in the order their gradients are
// expected to become ready (reverse registration order at first), packed into buckets of
// at most a byte cap, with a small first bucket so communication starts early.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::dist {

struct BucketCaps {
  int64_t first_bytes = int64_t{1} << 20;  // 1 MiB, as DDP
  int64_t bytes = int64_t{25} << 20;       // 25 MiB, as DDP
  // The gradients that become ready last: nothing is left to overlap their all-reduce, so
  // a small bucket keeps the exposed tail short.
  int64_t last_bytes = int64_t{1} << 20;
};

struct ParamSlot {
  int64_t bytes = 0;
  std::string group;  // dtype and device: a bucket holds one group only
};

// Buckets as lists of indices into `slots`, visiting slots in `order`. A parameter larger
// than the cap gets a bucket of its own; a group change closes the current bucket. The
// last parameters in `order` (up to last_bytes, at least one) form the last bucket.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<ParamSlot>& slots, const std::vector<size_t>& order,
                                              const BucketCaps& caps);

}  // namespace dpunet::dist
