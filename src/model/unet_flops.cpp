// unet_forward_flops: walks the encoder and decoder levels, tracking the map size.
#include "model/unet_flops.h"

#include "common/error.h"

namespace dpunet::model {

double unet_forward_flops(const UnetOptions& o, int64_t input_size) {
  DPUNET_CHECK(output_size(o, input_size).has_value(), "FLOP count: a ", input_size,
               " px input does not suit the model");
  const int64_t shrink = o.padding == Padding::kValid ? 2 : 0;  // per 3x3 convolution
  double flops = 0;
  // 3x3 convolution on a size x size map; returns the output side.
  auto conv3 = [&](int64_t in, int64_t out, int64_t size) {
    const int64_t out_size = size - shrink;
    flops += 2.0 * in * out * 9 * static_cast<double>(out_size * out_size);
    return out_size;
  };
  auto double_conv = [&](int64_t in, int64_t mid, int64_t out, int64_t size) {
    return conv3(mid, out, conv3(in, mid, size));
  };
  // A bilinear U-Net (as the reference's) halves the bottom block and every decoder
  // block but the last, and up-samples without weights (not counted, as pooling is not).
  const int64_t factor = o.bilinear ? 2 : 1;
  auto width = [&](int64_t level) { return o.base_channels << level; };

  std::vector<int64_t> skip_sizes;
  int64_t size = double_conv(o.n_channels, width(0), width(0), input_size);
  skip_sizes.push_back(size);
  for (int64_t level = 1; level <= o.depth; ++level) {
    const int64_t out = level == o.depth ? width(level) / factor : width(level);
    size = double_conv(width(level - 1), out, out, size / 2);
    skip_sizes.push_back(size);
  }
  for (int64_t level = o.depth - 1; level >= 0; --level) {
    // Either way the concatenation holds width(level + 1) channels: the up-sampled map's
    // half and the skip's.
    const int64_t in = width(level + 1);
    const int64_t out = level == 0 ? width(0) : width(level) / factor;
    // 2x2 transposed convolution, stride 2: every input pixel feeds a 2x2 output patch.
    if (!o.bilinear) flops += 2.0 * in * (in / 2) * 4 * static_cast<double>(size * size);
    const int64_t up_size = size * 2;
    // The skip is cropped (valid) or the up-sampled map padded (same) to match.
    size = double_conv(in, o.bilinear ? in / 2 : out, out, o.padding == Padding::kValid ? up_size : skip_sizes[level]);
  }
  flops += 2.0 * o.base_channels * o.n_classes * static_cast<double>(size * size);  // 1x1 output conv
  return flops;
}

}  // namespace dpunet::model
