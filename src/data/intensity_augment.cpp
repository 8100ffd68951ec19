// Intensity augmentation: brightness, contrast, gamma, Gaussian noise, blur and lower
// resolution, as nnU-Net applies them: each channel draws its own amount, contrast keeps
// the channel's range, gamma keeps its mean and standard deviation.
#include <algorithm>
#include <cmath>

#include "data/augment.h"
#include "data/image_filters.h"

namespace dpunet::data {
namespace {

// nnU-Net blurs, and lowers the resolution of, each channel of a chosen sample with this
// probability.
constexpr double kBlurChannelProbability = 0.5;

struct MeanStd {
  double mean = 0, std = 0;
};

double mean_of(const float* values, int64_t count) {
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += values[i];
  return sum / static_cast<double>(count);
}

MeanStd mean_std(const float* values, int64_t count) {
  const double mean = mean_of(values, count);
  double squares = 0;
  for (int64_t i = 0; i < count; ++i) squares += (values[i] - mean) * (values[i] - mean);
  return {mean, std::sqrt(squares / static_cast<double>(count))};
}

// A factor drawn from a range around 1: half the time below 1, half above, as nnU-Net
// does, so that increases and decreases are equally likely whatever the range's
// asymmetry; a range on one side of 1 is drawn from as it is.
double draw_around_one(double low, double high, Rng& rng) {
  if (low < 1.0 && high > 1.0) return rng.chance(0.5) ? rng.uniform(low, 1.0) : rng.uniform(1.0, high);
  return rng.uniform(low, high);
}

void scale_contrast(float* values, int64_t count, float factor) {
  const auto [low, high] = std::minmax_element(values, values + count);
  const float minimum = *low, maximum = *high;
  const auto mean = static_cast<float>(mean_of(values, count));
  // The changed channel keeps its range (nnU-Net's preserve_range): a stronger contrast
  // saturates at the old extremes instead of inventing intensities never seen.
  for (int64_t i = 0; i < count; ++i) values[i] = std::clamp((values[i] - mean) * factor + mean, minimum, maximum);
}

// Gamma needs values in [0, 1]: the channel's range is rescaled there and back. The
// result is then given the channel's former mean and standard deviation (nnU-Net's
// retain_stats), so that gamma changes the shape of the intensity distribution, not its
// level: without that, one bright outlier pixel would shift the whole image.
// `inverted` applies the curve to the negated channel, brightening dark structures.
void adjust_gamma(float* values, int64_t count, double gamma, bool inverted) {
  const auto negate = [&] { std::for_each(values, values + count, [](float& v) { v = -v; }); };
  if (inverted) negate();
  const MeanStd before = mean_std(values, count);
  const auto [low, high] = std::minmax_element(values, values + count);
  const float minimum = *low, range = *high - *low;
  if (range > 1e-12f) {
    const float inverse = 1.0f / range;
    const auto exponent = static_cast<float>(gamma);
    for (int64_t i = 0; i < count; ++i)
      values[i] = std::pow((values[i] - minimum) * inverse, exponent) * range + minimum;
    const MeanStd after = mean_std(values, count);
    const double scale = before.std / (after.std + 1e-8);
    for (int64_t i = 0; i < count; ++i) {
      values[i] = static_cast<float>((values[i] - after.mean) * scale + before.mean);
    }
  }
  if (inverted) negate();
}

}  // namespace

void intensity_augment(Sample& sample, const AugmentOptions& o, Rng& rng) {
  const int64_t pixels = sample.height * sample.width;
  float* image = sample.image.data();
  const auto channel = [&](int64_t c) { return image + c * pixels; };
  if (rng.chance(o.brightness_probability)) {
    for (int64_t c = 0; c < sample.channels; ++c) {
      const auto factor = static_cast<float>(draw_around_one(1.0 - o.brightness_range, 1.0 + o.brightness_range, rng));
      std::for_each(channel(c), channel(c) + pixels, [factor](float& v) { v *= factor; });
    }
  }
  if (rng.chance(o.contrast_probability)) {
    for (int64_t c = 0; c < sample.channels; ++c) {
      const auto factor = static_cast<float>(draw_around_one(1.0 - o.contrast_range, 1.0 + o.contrast_range, rng));
      scale_contrast(channel(c), pixels, factor);
    }
  }
  // nnU-Net's two gamma passes: the inverted one first, then the plain one.
  for (const bool inverted : {true, false}) {
    if (!rng.chance(inverted ? o.gamma_invert_probability : o.gamma_probability)) continue;
    for (int64_t c = 0; c < sample.channels; ++c) {
      adjust_gamma(channel(c), pixels, draw_around_one(o.gamma_min, o.gamma_max, rng), inverted);
    }
  }
  if (rng.chance(o.noise_probability)) {
    const auto std = static_cast<float>(rng.uniform(0.0, o.noise_std));
    const size_t count = sample.image.size();
    float a = 0, b = 0;
    for (size_t i = 0; i < count; i += 2) {
      rng.normal_pair(a, b);
      image[i] += std * a;
      if (i + 1 < count) image[i + 1] += std * b;
    }
  }
  // Last, so that with their probabilities at 0 every other draw is what it was before
  // they existed (the config's defaults are not 0: nnU-Net's 0.2 and 0.25).
  if (rng.chance(o.blur_probability)) {
    for (int64_t c = 0; c < sample.channels; ++c) {
      if (!rng.chance(kBlurChannelProbability)) continue;
      gaussian_blur(channel(c), sample.height, sample.width, rng.uniform(o.blur_sigma_min, o.blur_sigma_max));
    }
  }
  if (rng.chance(o.low_resolution_probability)) {
    for (int64_t c = 0; c < sample.channels; ++c) {
      if (!rng.chance(kBlurChannelProbability)) continue;
      simulate_low_resolution(channel(c), sample.height, sample.width, rng.uniform(o.low_resolution_min, 1.0));
    }
  }
}

}  // namespace dpunet::data
