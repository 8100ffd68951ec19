// gaussian_blur, simulate_low_resolution.
#include "data/image_filters.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/cubic.h"
#include "data/reflect.h"

namespace dpunet::data {
namespace {

// Resamples each of `rows` lines of `in_size` values to `out_size` values by cubic
// interpolation, pixel centres aligned. A line's values are `*_stride` apart and lines
// `*_row_step` apart: (1, width) walks the rows of a [H, W] map, (width, 1) its columns.
void cubic_resample_rows(const float* in, int64_t rows, int64_t in_size, int64_t in_stride, int64_t in_row_step,
                         float* out, int64_t out_size, int64_t out_stride, int64_t out_row_step) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    const double u = (static_cast<double>(o) + 0.5) * scale - 0.5;
    const auto base = static_cast<int64_t>(std::floor(u));
    double w[4];
    cubic_weights(u - static_cast<double>(base), w);
    int64_t at[4];
    for (int k = 0; k < 4; ++k) at[k] = std::clamp<int64_t>(base - 1 + k, 0, in_size - 1) * in_stride;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = in + r * in_row_step;
      double v = 0;
      for (int k = 0; k < 4; ++k) v += w[k] * row[at[k]];
      out[r * out_row_step + o * out_stride] = static_cast<float>(v);
    }
  }
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
  std::vector<float> rows(static_cast<size_t>(height * width));
  for (int64_t y = 0; y < height; ++y) {
    const float* line = channel + y * width;
    for (int64_t x = 0; x < width; ++x) {
      float v = 0;
      for (int64_t k = -radius; k <= radius; ++k) v += kernel[k + radius] * line[reflect_index(x + k, width)];
      rows[y * width + x] = v;
    }
  }
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) channel[y * width + x] = 0;
    for (int64_t k = -radius; k <= radius; ++k) {
      const float weight = kernel[k + radius];
      const float* source = rows.data() + reflect_index(y + k, height) * width;
      for (int64_t x = 0; x < width; ++x) channel[y * width + x] += weight * source[x];
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
  // Up along x ([low_h, low_w] -> [low_h, width]), then along y into the channel.
  std::vector<float> wide(static_cast<size_t>(low_h * width));
  cubic_resample_rows(low.data(), low_h, low_w, 1, low_w, wide.data(), width, 1, width);
  cubic_resample_rows(wide.data(), width, low_h, width, 1, channel, height, width, 1);
}

}  // namespace dpunet::data
