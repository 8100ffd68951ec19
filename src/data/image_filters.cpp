// gaussian_blur, simulate_low_resolution.
#include "data/image_filters.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/cubic.h"
#include "data/reflect.h"

namespace dpunet::data {
namespace {

// For each of `out_size` positions, the four source indices and cubic weights that
// interpolate it from `in_size` values, pixel centres aligned (edges clamped).
struct CubicTaps {
  std::vector<int64_t> at;
  std::vector<float> weight;
};

CubicTaps cubic_taps(int64_t in_size, int64_t out_size) {
  CubicTaps taps;
  taps.at.resize(static_cast<size_t>(4 * out_size));
  taps.weight.resize(taps.at.size());
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    const double u = (static_cast<double>(o) + 0.5) * scale - 0.5;
    const double base = std::floor(u);
    double w[4];
    cubic_weights(u - base, w);
    for (int k = 0; k < 4; ++k) {
      taps.at[4 * o + k] = std::clamp<int64_t>(static_cast<int64_t>(base) - 1 + k, 0, in_size - 1);
      taps.weight[4 * o + k] = static_cast<float>(w[k]);
    }
  }
  return taps;
}

}  // namespace

void gaussian_blur(float* channel, int64_t height, int64_t width, double sigma) {
  if (sigma <= 0) return;
  const auto radius = std::max<int64_t>(1, static_cast<int64_t>(4 * sigma + 0.5));
  std::vector<float> kernel(static_cast<size_t>(2 * radius + 1));
  double sum = 0;
  for (int64_t k = -radius; k <= radius; ++k) {
    const double v = std::exp(-0.5 * static_cast<double>(k * k) / (sigma * sigma));
    kernel[static_cast<size_t>(k + radius)] = static_cast<float>(v);
    sum += v;
  }
  for (float& v : kernel) v = static_cast<float>(v / sum);
  // Along x, through one mirrored copy of each row so the inner loops run straight.
  std::vector<float> rows(static_cast<size_t>(height * width)), line(static_cast<size_t>(width + 2 * radius));
  for (int64_t y = 0; y < height; ++y) {
    const float* source = channel + y * width;
    for (int64_t i = 0; i < width + 2 * radius; ++i) line[i] = source[reflect_index(i - radius, width)];
    float* out = rows.data() + y * width;
    std::fill(out, out + width, 0.0f);
    for (int64_t k = 0; k <= 2 * radius; ++k) {
      const float weight = kernel[k];
      const float* shifted = line.data() + k;
      for (int64_t x = 0; x < width; ++x) out[x] += weight * shifted[x];
    }
  }
  // Along y: whole rows at a time.
  for (int64_t y = 0; y < height; ++y) {
    float* out = channel + y * width;
    std::fill(out, out + width, 0.0f);
    for (int64_t k = -radius; k <= radius; ++k) {
      const float weight = kernel[k + radius];
      const float* source = rows.data() + reflect_index(y + k, height) * width;
      for (int64_t x = 0; x < width; ++x) out[x] += weight * source[x];
    }
  }
}

void simulate_low_resolution(float* channel, int64_t height, int64_t width, double zoom) {
  const auto low_h = std::clamp<int64_t>(std::llround(static_cast<double>(height) * zoom), 1, height);
  const auto low_w = std::clamp<int64_t>(std::llround(static_cast<double>(width) * zoom), 1, width);
  if (low_h == height && low_w == width) return;
  std::vector<float> low(static_cast<size_t>(low_h * low_w));
  for (int64_t y = 0; y < low_h; ++y) {
    const int64_t sy = std::min(height - 1, (2 * y + 1) * height / (2 * low_h));
    for (int64_t x = 0; x < low_w; ++x) {
      const int64_t sx = std::min(width - 1, (2 * x + 1) * width / (2 * low_w));
      low[y * low_w + x] = channel[sy * width + sx];
    }
  }
  // Up along x ([low_h, low_w] -> [low_h, width]), then along y, whole rows at a time.
  const CubicTaps across = cubic_taps(low_w, width), down = cubic_taps(low_h, height);
  std::vector<float> wide(static_cast<size_t>(low_h * width));
  for (int64_t y = 0; y < low_h; ++y) {
    const float* source = low.data() + y * low_w;
    for (int64_t x = 0; x < width; ++x) {
      float v = 0;
      for (int k = 0; k < 4; ++k) v += across.weight[4 * x + k] * source[across.at[4 * x + k]];
      wide[y * width + x] = v;
    }
  }
  for (int64_t y = 0; y < height; ++y) {
    float* out = channel + y * width;
    std::fill(out, out + width, 0.0f);
    for (int k = 0; k < 4; ++k) {
      const float weight = down.weight[4 * y + k];
      const float* source = wide.data() + down.at[4 * y + k] * width;
      for (int64_t x = 0; x < width; ++x) out[x] += weight * source[x];
    }
  }
}

}  // namespace dpunet::data
