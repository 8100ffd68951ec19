// Mirror indexing without repeating the edge pixel (numpy's "reflect"): the border rule
// of the U-Net paper's overlap-tile strategy, shared by augmentation and inference.
#pragma once

#include <cassert>
#include <cstdint>

namespace dpunet::data {

// Index `i` of any sign mirrored into [0, n); n > 0 (readers refuse empty images).
inline int64_t reflect_index(int64_t i, int64_t n) {
  assert(n > 0);
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace dpunet::data
