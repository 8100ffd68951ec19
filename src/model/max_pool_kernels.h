// 2x2 max pooling with stride 2 on NHWC maps, without indices. ATen's pooling writes an
// int64 index per output value (as many bytes as a 16-bit input map) and keeps it for
// backward; here forward writes only the pooled map, and backward finds each window's
// maximum again in the input, which backward keeps anyway. The maximum is chosen as
// ATen's CUDA kernels choose it (the first largest in row-major order, the last NaN over
// any number) and values and gradients are stored as they are, as those kernels store
// them, so both match ATen's on the GPU bit for bit. One exception: a window of nothing
// but -inf, whose gradient ATen's NHWC kernel sends to the map's first pixel (its index
// starts at 0) and this one to the window's first. Plain pointers and a stream keep this
// header and its .cu file free of torch.
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
constexpr int64_t kPoolVectorBytes = 16;

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

// Output pixel (n, oh, ow) and 16-byte channel vector of the flat vector index v (in
// NHWC order) of the pooled map. `Index` is the type the divisions run in (32-bit where
// the map allows: a 64-bit division costs the GPU several times more).
struct PoolPosition {
  int64_t n, oh, ow, vector;
};
template <typename Index>
DPUNET_HOST_DEVICE inline PoolPosition pool_position(const PoolGeometry& g, Index v, Index vectors_per_pixel) {
  const Index pixel = v / vectors_per_pixel;
  const auto out_width = static_cast<Index>(g.out_width()), out_height = static_cast<Index>(g.out_height());
  const Index row = pixel / out_width;  // n * out_height + oh
  return {static_cast<int64_t>(row / out_height), static_cast<int64_t>(row % out_height),
          static_cast<int64_t>(pixel - row * out_width), static_cast<int64_t>(v - pixel * vectors_per_pixel)};
}

// Index of the input's 16-byte vector at window position `corner` of p, for maps of
// `per_vector` values per vector.
DPUNET_HOST_DEVICE inline int64_t window_vector(const PoolGeometry& g, const PoolPosition& p, int corner,
                                                int64_t per_vector) {
  const int64_t h = 2 * p.oh + corner / 2;
  const int64_t w = 2 * p.ow + corner % 2;
  return ((p.n * g.height + h) * g.width + w) * (g.channels / per_vector) + p.vector;
}

// Calls visit(window, out, best) for every value of the pooled map, in the kernels' order
// and through their positions and vectors: `window` holds the element offsets of its four
// input values, `out` its own offset, `best` which of the four is the maximum.
template <typename T, typename Visit>
void for_each_pooled_value(const T* x, const PoolGeometry& g, Visit&& visit) {
  constexpr int64_t per_vector = kPoolVectorBytes / sizeof(T);
  const int64_t vectors = g.channels / per_vector;
  for (int64_t v = 0; v < g.batch * g.out_height() * g.out_width() * vectors; ++v) {
    const PoolPosition p = pool_position<int64_t>(g, v, vectors);
    for (int64_t e = 0; e < per_vector; ++e) {
      int64_t window[4];
      for (int corner = 0; corner < 4; ++corner)
        window[corner] = window_vector(g, p, corner, per_vector) * per_vector + e;
      const int best = window_argmax(static_cast<float>(x[window[0]]), static_cast<float>(x[window[1]]),
                                     static_cast<float>(x[window[2]]), static_cast<float>(x[window[3]]));
      visit(window, v * per_vector + e, best);
    }
  }
}

// Both passes on the host: the reference the kernels are tested against, and the path of
// CPU maps. T: float, c10::BFloat16 or c10::Half. Values and gradients move as they are,
// as ATen's CUDA kernels move them.
template <typename T>
void max_pool_forward_host(const T* x, T* y, const PoolGeometry& g) {
  for_each_pooled_value(x, g, [&](const int64_t(&window)[4], int64_t out, int best) { y[out] = x[window[best]]; });
}

template <typename T>
void max_pool_backward_host(const T* x, const T* dy, T* dx, const PoolGeometry& g) {
  for_each_pooled_value(x, g, [&](const int64_t(&window)[4], int64_t out, int best) {
    for (int corner = 0; corner < 4; ++corner) dx[window[corner]] = corner == best ? dy[out] : T(0);
  });
}

// The passes on the GPU. Each returns a CUDA error string, or nullptr on success.
const char* max_pool_forward(PoolType type, const void* x, void* y, const PoolGeometry& g, int multiprocessors,
                             void* stream);
const char* max_pool_backward(PoolType type, const void* x, const void* dy, void* dx, const PoolGeometry& g,
                              int multiprocessors, void* stream);

// Whether this build holds code the current GPU can run: nullptr, or CUDA's reason (a
// build for sm_90 alone has none for an sm_80 GPU). Asked of one kernel: all of dpunet's
// are built for the same architectures (DPUNET_CUDA_ARCHITECTURES).
const char* kernel_code_for_current_device();

}  // namespace dpunet::model::cuda
