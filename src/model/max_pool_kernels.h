// 2x2 max pooling with stride 2 on NHWC maps, without indices. ATen's pooling writes an
// int64 index per output value (as many bytes as a 16-bit input map) and keeps it for
// backward; here forward writes only the pooled map, and backward finds each window's
// maximum again in the input, which backward keeps anyway. The window's maximum is chosen
// as ATen chooses it (the first largest in row-major order, the last NaN over any
// number), so gradients land where ATen's would, and stored through float as ATen stores
// it, so even a NaN's bits match. Plain pointers and a stream keep this header and its
// .cu file free of torch.
//
// Layout: maps NHWC and dense; channel bytes a multiple of 16; pointers 16-byte aligned.
// An odd last row or column of the input is not pooled (floor), and backward leaves its
// gradient as it is: the caller zeroes it.
#pragma once

#include <cmath>
#include <cstdint>

#include "model/host_device.h"

namespace dpunet::model::cuda {

enum class PoolType { kFloat, kBFloat16, kHalf };

struct PoolGeometry {
  int64_t batch = 0, height = 0, width = 0, channels = 0;  // the input's

  DPUNET_HOST_DEVICE int64_t out_height() const { return height / 2; }
  DPUNET_HOST_DEVICE int64_t out_width() const { return width / 2; }
};

// Which of a window's four values (row-major: top left, top right, bottom left, bottom
// right) is its maximum, the way ATen's pooling picks it.
template <typename F>
DPUNET_HOST_DEVICE inline int window_argmax(F a, F b, F c, F d) {
  const F values[4] = {a, b, c, d};
  int best = 0;
  F max = values[0];
  for (int i = 1; i < 4; ++i) {
    if (values[i] > max || values[i] != values[i]) {  // v != v: NaN
      max = values[i];
      best = i;
    }
  }
  return best;
}

// Element offset (in NHWC order) of window position `corner` of output pixel
// (n, oh, ow), channel 0.
DPUNET_HOST_DEVICE inline int64_t window_offset(const PoolGeometry& g, int64_t n, int64_t oh, int64_t ow, int corner) {
  const int64_t h = 2 * oh + corner / 2;
  const int64_t w = 2 * ow + corner % 2;
  return ((n * g.height + h) * g.width + w) * g.channels;
}

// Both passes on the host, for the float types the tests use: the reference the kernels
// are tested against, and the path of CPU maps.
template <typename T>
void max_pool_forward_host(const T* x, T* y, const PoolGeometry& g) {
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < g.out_height(); ++oh) {
      for (int64_t ow = 0; ow < g.out_width(); ++ow) {
        for (int64_t c = 0; c < g.channels; ++c) {
          const float v[4] = {static_cast<float>(x[window_offset(g, n, oh, ow, 0) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 1) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 2) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 3) + c])};
          const int best = window_argmax(v[0], v[1], v[2], v[3]);
          // Through float, as ATen stores it: a NaN comes out in the canonical form.
          y[((n * g.out_height() + oh) * g.out_width() + ow) * g.channels + c] = T(v[best]);
        }
      }
    }
  }
}

template <typename T>
void max_pool_backward_host(const T* x, const T* dy, T* dx, const PoolGeometry& g) {
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < g.out_height(); ++oh) {
      for (int64_t ow = 0; ow < g.out_width(); ++ow) {
        for (int64_t c = 0; c < g.channels; ++c) {
          const float v[4] = {static_cast<float>(x[window_offset(g, n, oh, ow, 0) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 1) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 2) + c]),
                              static_cast<float>(x[window_offset(g, n, oh, ow, 3) + c])};
          const int best = window_argmax(v[0], v[1], v[2], v[3]);
          const T grad = dy[((n * g.out_height() + oh) * g.out_width() + ow) * g.channels + c];
          for (int corner = 0; corner < 4; ++corner) {
            // 0 + g, as ATen accumulates it: a gradient of -0 lands as +0.
            dx[window_offset(g, n, oh, ow, corner) + c] = corner == best ? T(0.0f + static_cast<float>(grad)) : T(0);
          }
        }
      }
    }
  }
}

// The passes on the GPU. Each returns a CUDA error string, or nullptr on success.
const char* max_pool_forward(PoolType type, const void* x, void* y, const PoolGeometry& g, int multiprocessors,
                             void* stream);
const char* max_pool_backward(PoolType type, const void* x, const void* dy, void* dx, const PoolGeometry& g,
                              int multiprocessors, void* stream);

}  // namespace dpunet::model::cuda
