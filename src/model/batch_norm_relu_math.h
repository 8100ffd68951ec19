// The arithmetic of the fused BatchNorm+ReLU kernels (batch_norm_relu_kernels.cu) that
// the host runs as well: how the reductions split rows among blocks and threads, how many
// blocks the apply kernels launch, and the per-channel and per-value formulas. The
// kernels' host reference (tests/support/batch_norm_relu_reference) walks the same grid
// with these functions, so a build without a GPU checks them against ATen.
#pragma once

#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

#include "model/host_device.h"

namespace dpunet::model::cuda {

constexpr int kNormThreads = 256;  // threads per block, in every kernel
constexpr int kNormVector = 8;     // channels per thread: one 16-byte load of a 16-bit map
constexpr int kReductionBlocksPerSm = 8;
constexpr int kApplyBlocksPerSm = 16;

// How the reductions split rows: `groups` threads per row (8 channels each), a block
// covers `rows_per_pass` rows per pass over its `chunk` consecutive rows.
struct ReductionSplit {
  int groups;
  int rows_per_pass;
  int blocks;
  int64_t chunk;
};
inline ReductionSplit reduction_split(int64_t rows, int64_t channels, int multiprocessors) {
  ReductionSplit s;
  s.groups = static_cast<int>(channels / kNormVector);
  s.rows_per_pass = kNormThreads / s.groups;
  const int64_t wanted = (rows + s.rows_per_pass - 1) / s.rows_per_pass;
  s.blocks = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(wanted, int64_t{multiprocessors} * kReductionBlocksPerSm)));
  s.chunk = (rows + s.blocks - 1) / s.blocks;
  return s;
}

// Blocks of the apply kernels: enough to fill the GPU, rounded up so that a thread's
// stride through the map (blocks * kNormThreads * kNormVector values) is a multiple of
// `channels`: a thread then meets the same 8 channels at every step and keeps their
// coefficients in registers.
inline int apply_blocks(int64_t vectors, int64_t channels, int multiprocessors) {
  const int64_t wanted = (vectors + kNormThreads - 1) / kNormThreads;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(wanted, int64_t{multiprocessors} * kApplyBlocksPerSm));
  const int64_t multiple = channels / std::gcd<int64_t>(channels, int64_t{kNormThreads} * kNormVector);
  return static_cast<int>((blocks + multiple - 1) / multiple * multiple);
}

// Normalise-then-scale of one channel in affine form: z = x * scale + offset, with scale
// = invstd * weight and offset = bias - mean * scale (two values per channel in the
// apply kernels' registers, not three). Rounded explicitly on the GPU, so forward and
// backward compute bit-identical z (and so the same ReLU mask) whatever the compiler
// contracts.
struct Affine {
  float scale, offset;
};
DPUNET_HOST_DEVICE inline Affine affine(float mean, float invstd, float weight, float bias) {
#ifdef __CUDA_ARCH__
  const float scale = __fmul_rn(invstd, weight);
  return {scale, __fmaf_rn(-mean, scale, bias)};
#else
  const float scale = invstd * weight;
  return {scale, std::fma(-mean, scale, bias)};
#endif
}
DPUNET_HOST_DEVICE inline float pre_relu(float x, Affine a) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(x, a.scale, a.offset);
#else
  return std::fma(x, a.scale, a.offset);
#endif
}
// ReLU's pass test, as ATen's: NaN passes (and so propagates) like a positive value.
DPUNET_HOST_DEVICE inline bool relu_passes(float z) {
  return !(z <= 0.f);
}

// One channel's batch statistics from sums over `n` rows of d = x - shift and of d^2
// (a shift near the values keeps the variance from cancelling), and the running
// statistics' update as BatchNorm makes it (the unbiased variance).
struct ChannelStatistics {
  float save_mean, save_invstd, running_mean, running_var;
};
DPUNET_HOST_DEVICE inline ChannelStatistics channel_statistics(double sum, double squares, double shift, double n,
                                                               double eps, double momentum, float running_mean,
                                                               float running_var) {
  const double shifted_mean = sum / n;
  const double raw_var = squares / n - shifted_mean * shifted_mean;
  const double var = raw_var < 0 ? 0.0 : raw_var;  // rounding may dip below 0; NaN stays NaN
  const double mean = shift + shifted_mean;
  return {static_cast<float>(mean), static_cast<float>(1.0 / sqrt(var + eps)),
          static_cast<float>((1 - momentum) * running_mean + momentum * mean),
          static_cast<float>((1 - momentum) * running_var + momentum * var * n / (n > 1 ? n - 1 : 1.0))};
}

// Backward of one channel: with g = dy where the ReLU passed and 0 elsewhere, and the
// sums over all rows dbias = sum(g) and dweight = sum(g * xhat),
// dx = invstd * weight * (g - mean(g) - xhat * mean(g * xhat)).
struct BackwardGains {
  float mean, invstd, gain, gain_mean_grad, gain_mean_dot;
};
DPUNET_HOST_DEVICE inline BackwardGains backward_gains(float mean, float invstd, float weight, float dweight,
                                                       float dbias, float inv_rows) {
  const float gain = invstd * weight;
  return {mean, invstd, gain, gain * dbias * inv_rows, gain * dweight * inv_rows};
}
DPUNET_HOST_DEVICE inline float masked_gradient(float x, float dy, Affine a) {
  return relu_passes(pre_relu(x, a)) ? dy : 0.f;
}
DPUNET_HOST_DEVICE inline float normalised(float x, float mean, float invstd) {
  return (x - mean) * invstd;
}
DPUNET_HOST_DEVICE inline float input_gradient(float x, float dy, Affine a, const BackwardGains& b) {
  return b.gain * masked_gradient(x, dy, a) - b.gain_mean_grad - normalised(x, b.mean, b.invstd) * b.gain_mean_dot;
}

}  // namespace dpunet::model::cuda
