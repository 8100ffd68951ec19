// Intensity augmentation: brightness, contrast, gamma, Gaussian noise, blur and lower
// resolution.
#include <algorithm>
#include <cmath>

#include "data/augment.h"
#include "data/image_filters.h"

namespace dpunet::data {
namespace {

void adjust_gamma(float* values, int64_t count, double gamma) {
  // Gamma needs values in [0, 1]: rescale the channel's range there and back.
  const auto [low, high] = std::minmax_element(values, values + count);
  const float minimum = *low, range = *high - *low;
  if (range <= 1e-12f) return;
  const float inverse = 1.0f / range;
  const float exponent = static_cast<float>(gamma);
  for (int64_t i = 0; i < count; ++i) values[i] = std::pow((values[i] - minimum) * inverse, exponent) * range + minimum;
}

}  // namespace

void intensity_augment(Sample& sample, const AugmentOptions& o, Rng& rng) {
  const int64_t pixels = sample.height * sample.width;
  float* image = sample.image.data();
  if (rng.chance(o.brightness_probability)) {
    const float factor = static_cast<float>(rng.uniform(1.0 - o.brightness_range, 1.0 + o.brightness_range));
    for (float& v : sample.image) v *= factor;
  }
  if (rng.chance(o.contrast_probability)) {
    const float factor = static_cast<float>(rng.uniform(1.0 - o.contrast_range, 1.0 + o.contrast_range));
    for (int64_t c = 0; c < sample.channels; ++c) {
      float* channel = image + c * pixels;
      double sum = 0;
      for (int64_t i = 0; i < pixels; ++i) sum += channel[i];
      const float mean = static_cast<float>(sum / static_cast<double>(pixels));
      for (int64_t i = 0; i < pixels; ++i) channel[i] = (channel[i] - mean) * factor + mean;
    }
  }
  if (rng.chance(o.gamma_probability)) {
    // A range around 1 is drawn half the time below 1, half above, as nnU-Net does, so
    // brightening and darkening are equally likely whatever the range's asymmetry; a
    // range on one side of 1 is drawn from as it is.
    double gamma = 1.0;
    if (o.gamma_min < 1.0 && o.gamma_max > 1.0) {
      gamma = rng.chance(0.5) ? rng.uniform(o.gamma_min, 1.0) : rng.uniform(1.0, o.gamma_max);
    } else {
      gamma = rng.uniform(o.gamma_min, o.gamma_max);
    }
    for (int64_t c = 0; c < sample.channels; ++c) adjust_gamma(image + c * pixels, pixels, gamma);
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
      gaussian_blur(image + c * pixels, sample.height, sample.width, rng.uniform(o.blur_sigma_min, o.blur_sigma_max));
    }
  }
  if (rng.chance(o.low_resolution_probability)) {
    for (int64_t c = 0; c < sample.channels; ++c) {
      simulate_low_resolution(image + c * pixels, sample.height, sample.width, rng.uniform(o.low_resolution_min, 1.0));
    }
  }
}

}  // namespace dpunet::data
