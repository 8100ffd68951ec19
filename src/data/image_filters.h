// Filters on one channel [height, width] of float values, in place: nnU-Net's blur and
// low-resolution augmentations.
#pragma once

#include <cstdint>

namespace dpunet::data {

// Gaussian blur with standard deviation `sigma` pixels (kernel radius 4 sigma, borders
// mirrored without repeating the edge).
void gaussian_blur(float* channel, int64_t height, int64_t width, double sigma);

// What a camera of `zoom` times the resolution (0 < zoom <= 1) would have seen: the
// channel taken down to round(zoom * size) by nearest neighbour and back up by cubic
// interpolation. zoom 1 leaves it unchanged.
void simulate_low_resolution(float* channel, int64_t height, int64_t width, double zoom);

}  // namespace dpunet::data
