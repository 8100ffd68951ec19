// Backward of the U-Net decoder's concatenation [skip window, upsampled] on NHWC maps, in
// one pass: the concatenation's gradient is split into the skip's (written at the window's
// offset, the centre crop of valid padding) and the upsampled map's, 16 bytes at a time.
// ATen's backward hands out two channel-sliced views instead, which every consumer then
// copies with its generic strided kernel (and adds to with another). Plain pointers and a
// stream keep this header and its .cu file free of torch.
//
// Layout: every map NHWC and dense; each part's channel bytes a multiple of 16; every
// pointer 16-byte aligned. The skip's gradient outside the window is left as it is (the
// caller zeroes it when the window is not the whole map).
#pragma once

#include <cstdint>
#include <cstring>

#include "model/host_device.h"

namespace dpunet::model::cuda {

constexpr int64_t kSplitVectorBytes = 16;

struct ConcatGeometry {
  int64_t batch = 0, height = 0, width = 0;  // the concatenation's size, also the upsampled map's
  int64_t skip_height = 0, skip_width = 0;   // the whole skip map's
  int64_t top = 0, left = 0;                 // the window's offset in the skip map
  int64_t skip_vectors = 0, up_vectors = 0;  // 16-byte vectors per pixel of each part

  int64_t total_vectors() const { return batch * height * width * (skip_vectors + up_vectors); }
};

// Where vector `v` (in NHWC order) of the concatenation's gradient goes: vector `index` of
// the skip's gradient when `to_skip`, else of the upsampled map's. `Index` is the type the
// divisions run in (32-bit where the map allows: a 64-bit division costs the GPU several
// times more).
struct SplitTarget {
  bool to_skip;
  int64_t index;
};

template <typename Index>
DPUNET_HOST_DEVICE inline SplitTarget split_target(const ConcatGeometry& g, Index v) {
  const auto per_pixel = static_cast<Index>(g.skip_vectors + g.up_vectors);
  const Index pixel = v / per_pixel;
  const Index c = v - pixel * per_pixel;
  const auto skip_vectors = static_cast<Index>(g.skip_vectors);
  if (c >= skip_vectors) {
    return {false, static_cast<int64_t>(pixel) * g.up_vectors + static_cast<int64_t>(c - skip_vectors)};
  }
  const auto width = static_cast<Index>(g.width), height = static_cast<Index>(g.height);
  const Index row = pixel / width;  // n * height + h
  const int64_t w = pixel - row * width;
  const int64_t h = row % height;
  const int64_t n = row / height;
  return {true, ((n * g.skip_height + h + g.top) * g.skip_width + w + g.left) * g.skip_vectors + c};
}

// The split on the host, vector by vector: the reference the kernel is tested against,
// and the path of CPU tensors.
inline void split_concat_grad_host(const void* grad, void* skip_grad, void* up_grad, const ConcatGeometry& g) {
  const auto* source = static_cast<const unsigned char*>(grad);
  for (int64_t v = 0; v < g.total_vectors(); ++v) {
    const SplitTarget t = split_target<int64_t>(g, v);
    auto* target = static_cast<unsigned char*>(t.to_skip ? skip_grad : up_grad);
    std::memcpy(target + t.index * kSplitVectorBytes, source + v * kSplitVectorBytes, kSplitVectorBytes);
  }
}

// The split on the GPU. Returns a CUDA error string, or nullptr on success.
const char* split_concat_grad(const void* grad, void* skip_grad, void* up_grad, const ConcatGeometry& g,
                              int multiprocessors, void* stream);

}  // namespace dpunet::model::cuda
