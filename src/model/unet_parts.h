// The U-Net's building blocks, laid out like the PyTorch reference so state_dict names
// match (`double_conv.0.weight`, `maxpool_conv.1...`, `up.weight`, `conv.bias`).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/upsampling.h>

#include "model/output_use.h"
#include "model/unet_options.h"

namespace dpunet::model {

// How the convolutions of a block are built: normalisation and padding.
struct ConvStyle {
  Norm norm = Norm::kBatch;
  Padding padding = Padding::kSame;
  std::shared_ptr<dist::Communicator> communicator;  // for Norm::kSyncBatch
  bool fuse_norm_relu = true;                        // Norm::kBatch: see model/batch_norm_relu.h
  bool pool_concat_kernels = true;                   // Down and Up: see model/max_pool.h, model/skip_concat.h
};

// (conv3x3 => norm => ReLU) * 2. Convolutions carry a bias only when there is no norm
// to absorb it (the reference always has BatchNorm and no bias).
class DoubleConvImpl : public torch::nn::Module {
 public:
  DoubleConvImpl(int64_t in_channels, int64_t out_channels, int64_t mid_channels, ConvStyle style);
  torch::Tensor forward(const torch::Tensor& x) { return run(x, OutputUse::kRead); }
  // forward, saying what the caller does with the result (model/output_use.h).
  torch::Tensor run(const torch::Tensor& x, OutputUse use);
  // run on the channel concatenation [a, b] without building it: the first convolution
  // as two over the weight's input-channel parts, summed (model/split_input_conv.h).
  torch::Tensor run_split(const torch::Tensor& a, const torch::Tensor& b, OutputUse use);

  // With BatchNorm: the second convolution's input, the first BatchNorm+ReLU output, is
  // recomputed in backward instead of kept (model/norm_relu_conv.h), except in a run with
  // OutputUse::kGradientOnly, whose backward follows at once. Other norms keep it.
  void recompute_norm_output(bool enabled) { recompute_norm_output_ = enabled && norm1_ != nullptr; }
  bool recomputes_norm_output() const { return recompute_norm_output_; }

 private:
  // Everything after the first convolution, from its output `h`.
  torch::Tensor run_after_first_conv(torch::Tensor h, OutputUse use);

  torch::nn::Sequential double_conv_;
  std::shared_ptr<torch::nn::Conv2dImpl> conv1_;  // its first layer
  int64_t padding_;                               // of both convolutions
  // With BatchNorm, its other layers by index, so forward can run each norm and the ReLU
  // after it as one fused step; null otherwise.
  std::shared_ptr<torch::nn::Conv2dImpl> conv2_;
  std::shared_ptr<torch::nn::BatchNorm2dImpl> norm1_, norm2_;
  bool fuse_norm_relu_ = true;
  bool recompute_norm_output_ = false;
};
TORCH_MODULE(DoubleConv);

// 2x2 max pool (model/max_pool.h), then DoubleConv.
class DownImpl : public torch::nn::Module {
 public:
  DownImpl(int64_t in_channels, int64_t out_channels, ConvStyle style);
  torch::Tensor forward(const torch::Tensor& x) { return run(x, OutputUse::kRead); }
  torch::Tensor run(const torch::Tensor& x, OutputUse use);
  DoubleConvImpl& double_conv() { return *conv_; }

 private:
  torch::nn::Sequential maxpool_conv_;  // the reference's layout: [MaxPool2d, DoubleConv]
  DoubleConv conv_{nullptr};            // its second layer
  bool pool_concat_kernels_;
};
TORCH_MODULE(Down);

// Upsample `below` x2 (transposed conv, or bilinear with align_corners), fit it to `skip`
// (zero-pad when same, centre-crop the skip when valid), concatenate [skip, up]
// (model/skip_concat.h), DoubleConv.
class UpImpl : public torch::nn::Module {
 public:
  UpImpl(int64_t in_channels, int64_t out_channels, bool bilinear, ConvStyle style);
  torch::Tensor forward(const torch::Tensor& below, const torch::Tensor& skip) {
    return run(below, skip, OutputUse::kRead);
  }
  torch::Tensor run(const torch::Tensor& below, const torch::Tensor& skip, OutputUse use);
  DoubleConvImpl& double_conv() { return *conv_; }

  // Whether the DoubleConv's first convolution takes the skip and the upsampled map as
  // two inputs (DoubleConvImpl::run_split) instead of their concatenation: backward then
  // keeps the skip map itself, which the encoder keeps anyway, rather than a copy inside
  // the concatenation. Results differ from the concatenation's in the last bits.
  void split_skip_conv(bool enabled) { split_skip_conv_ = enabled; }
  bool splits_skip_conv() const { return split_skip_conv_; }

 private:
  Padding padding_;
  bool pool_concat_kernels_;
  bool split_skip_conv_ = false;
  torch::nn::ConvTranspose2d up_transposed_{nullptr};
  torch::nn::Upsample up_bilinear_{nullptr};
  DoubleConv conv_{nullptr};
};
TORCH_MODULE(Up);

// 1x1 convolution to class logits.
class OutConvImpl : public torch::nn::Module {
 public:
  OutConvImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_;
};
TORCH_MODULE(OutConv);

}  // namespace dpunet::model
