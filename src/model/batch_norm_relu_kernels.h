// CUDA kernels for training-mode BatchNorm followed by ReLU on NHWC maps, in one pass
// each way instead of ATen's four (statistics, normalise, ReLU; and in backward, ReLU's
// mask, reduce, apply). Plain pointers and a stream, so this header and the .cu file
// stay free of torch.
//
// Layout: `rows` = N*H*W rows of `channels` values each, channels innermost. Channels must
// be a multiple of 8 and at most kMaxChannels; every pointer to map data must be 16-byte
// aligned. Per-channel vectors are float. Every function returns a CUDA error string, or
// nullptr on success.
#pragma once

#include <cstdint>

namespace dpunet::model::cuda {

enum class MapType { kFloat, kBFloat16, kHalf };
constexpr int64_t kMaxChannels = 1024;

// Bytes of scratch the reductions below need (float partial sums per block).
int64_t batch_norm_relu_workspace_bytes(int64_t rows, int64_t channels, int multiprocessors);

// Batch statistics, then y = max(0, (x - mean) * invstd * weight + bias). Writes
// save_mean and save_invstd (what backward needs) and updates the running statistics
// with `momentum` (unbiased variance, as BatchNorm does).
const char* batch_norm_relu_forward(MapType type, const void* x, void* y, int64_t rows, int64_t channels,
                                    const float* weight, const float* bias, float* running_mean, float* running_var,
                                    double momentum, double eps, float* save_mean, float* save_invstd, void* workspace,
                                    int multiprocessors, void* stream);

// The normalise + ReLU pass alone, with statistics computed earlier on the same x (a
// checkpointed block's recomputation): running statistics are left as they are.
const char* batch_norm_relu_apply(MapType type, const void* x, void* y, int64_t rows, int64_t channels,
                                  const float* weight, const float* bias, const float* save_mean,
                                  const float* save_invstd, int multiprocessors, void* stream);

// Gradients of the above from its input x and the output gradient dy: dx (may alias dy),
// dweight and dbias. The ReLU mask is recomputed from x, so y need not be kept.
const char* batch_norm_relu_backward(MapType type, const void* x, const void* dy, void* dx, int64_t rows,
                                     int64_t channels, const float* weight, const float* bias, const float* save_mean,
                                     const float* save_invstd, float* dweight, float* dbias, void* workspace,
                                     int multiprocessors, void* stream);

}  // namespace dpunet::model::cuda
