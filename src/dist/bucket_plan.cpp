// Greedy bucket packing in gradient-ready order.
#include "dist/bucket_plan.h"

#include "common/error.h"

namespace dpunet::dist {

std::vector<std::vector<size_t>> plan_buckets(const std::vector<ParamSlot>& slots, const std::vector<size_t>& order,
                                              const BucketCaps& caps) {
  DPUNET_CHECK(caps.first_bytes > 0 && caps.bytes > 0 && caps.last_bytes > 0,
               "bucket caps must be positive, got first ", caps.first_bytes, ", middle ", caps.bytes, " and last ",
               caps.last_bytes, " bytes");
  DPUNET_CHECK(order.size() == slots.size(), "bucket order names ", order.size(), " parameters, the model has ",
               slots.size());
  // Each parameter once: a duplicate would leave another out of every bucket.
  std::vector<bool> named(slots.size(), false);
  for (const size_t index : order) {
    DPUNET_CHECK(index < slots.size(), "bucket order names parameter ", index, " of ", slots.size());
    DPUNET_CHECK(!named[index], "bucket order names parameter ", index, " twice");
    named[index] = true;
  }
  // The tail bucket first: walk back from the end while it fits and stays in one group.
  size_t tail_start = order.size();
  int64_t tail_bytes = 0;
  while (tail_start > 0) {
    const ParamSlot& slot = slots[order[tail_start - 1]];
    const bool first = tail_start == order.size();
    if (!first && (tail_bytes + slot.bytes > caps.last_bytes || slot.group != slots[order.back()].group)) break;
    tail_bytes += slot.bytes;
    --tail_start;
  }

  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> current;
  int64_t current_bytes = 0;
  std::string current_group;
  auto close = [&] {
    if (current.empty()) return;
    buckets.push_back(std::move(current));
    current.clear();
    current_bytes = 0;
  };
  for (size_t position = 0; position < tail_start; ++position) {
    const size_t index = order[position];
    const ParamSlot& slot = slots[index];
    const int64_t cap = buckets.empty() ? caps.first_bytes : caps.bytes;
    const bool fits = current_bytes + slot.bytes <= cap;
    if (!current.empty() && (slot.group != current_group || !fits)) close();
    current_group = slot.group;
    current.push_back(index);
    current_bytes += slot.bytes;
    if (current_bytes >= (buckets.empty() ? caps.first_bytes : caps.bytes)) close();
  }
  close();
  if (tail_start < order.size()) buckets.emplace_back(order.begin() + tail_start, order.end());
  return buckets;
}

}  // namespace dpunet::dist
