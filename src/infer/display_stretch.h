// The overlay's grey: one channel's values stretched from their lowest to their highest
// over 0..255, a byte each. Shards' float samples and image files' stored values are
// drawn alike by it.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace dpunet::infer {

// `count` values of `in` into `out` (which may be `in` itself for bytes: stretched where
// they lie, so that no second copy of a slide's channel is held).
template <typename T>
void stretch_to_bytes(const T* in, int64_t count, uint8_t* out) {
  if (count == 0) return;
  const auto [low_at, high_at] = std::minmax_element(in, in + count);
  const auto low = static_cast<float>(*low_at);
  const auto scale =
      static_cast<float>(255.0 / std::max(static_cast<double>(*high_at) - static_cast<double>(*low_at), 1e-12));
  at::parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] =
          static_cast<uint8_t>(std::clamp(std::nearbyint((static_cast<float>(in[i]) - low) * scale), 0.0f, 255.0f));
    }
  });
}

}  // namespace dpunet::infer
