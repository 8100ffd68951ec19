// Unet building blocks. Child names are the reference's state_dict keys.
#include "model/unet_parts.h"

#include <iterator>

#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>

#include "dist/sync_batch_norm.h"
#include "model/batch_norm_relu.h"
#include "model/max_pool.h"
#include "model/norm_relu_conv.h"
#include "model/skip_concat.h"
#include "model/skip_window.h"
#include "model/split_input_conv.h"

namespace dpunet::model {
namespace {

int64_t conv3x3_padding(const ConvStyle& style) {
  return style.padding == Padding::kSame ? 1 : 0;
}

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, const ConvStyle& style) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, /*kernel_size=*/3)
                               .padding(conv3x3_padding(style))
                               .bias(style.norm == Norm::kNone));
}

void append_norm(torch::nn::Sequential& seq, int64_t channels, const ConvStyle& style) {
  switch (style.norm) {
    case Norm::kBatch: seq->push_back(torch::nn::BatchNorm2d(channels)); break;
    case Norm::kInstance:
      seq->push_back(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(channels).affine(true)));
      break;
    case Norm::kGroup:
      seq->push_back(torch::nn::GroupNorm(torch::nn::GroupNormOptions(group_norm_groups(channels), channels)));
      break;
    case Norm::kSyncBatch:
      seq->push_back(dist::SyncBatchNorm(dist::SyncBatchNormOptions{channels}, style.communicator));
      break;
    case Norm::kNone: break;
  }
}

}  // namespace

DoubleConvImpl::DoubleConvImpl(int64_t in_channels, int64_t out_channels, int64_t mid_channels, ConvStyle style) {
  torch::nn::Sequential seq;
  seq->push_back(conv3x3(in_channels, mid_channels, style));
  append_norm(seq, mid_channels, style);
  seq->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
  seq->push_back(conv3x3(mid_channels, out_channels, style));
  append_norm(seq, out_channels, style);
  seq->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
  double_conv_ = register_module("double_conv", seq);
  conv1_ = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(double_conv_->ptr(0));
  padding_ = conv3x3_padding(style);
  if (style.norm == Norm::kBatch) {
    norm1_ = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(double_conv_->ptr(1));
    conv2_ = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(double_conv_->ptr(3));
    norm2_ = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(double_conv_->ptr(4));
  }
  fuse_norm_relu_ = style.fuse_norm_relu;
}

torch::Tensor DoubleConvImpl::run(const torch::Tensor& x, OutputUse use) {
  return run_after_first_conv(conv1_->forward(x), use);
}

torch::Tensor DoubleConvImpl::run_split(const torch::Tensor& a, const torch::Tensor& b, OutputUse use) {
  return run_after_first_conv(split_input_conv2d(a, b, conv1_->weight, conv1_->bias, padding_), use);
}

torch::Tensor DoubleConvImpl::run_after_first_conv(torch::Tensor h, OutputUse use) {
  if (!norm1_) {
    for (auto layer = std::next(double_conv_->begin()); layer != double_conv_->end(); ++layer) {
      h = layer->forward(h);
    }
    return h;
  }
  // Recomputed as a checkpointed block, its backward follows at once and would need the
  // first BatchNorm+ReLU output two nodes later: kept, not recomputed a second time.
  const bool recompute_norm_output = recompute_norm_output_ && use == OutputUse::kRead;
  const torch::Tensor z = recompute_norm_output ? norm_relu_conv(h, *norm1_, *conv2_, fuse_norm_relu_)
                                                : conv2_->forward(batch_norm_relu(h, *norm1_, fuse_norm_relu_));
  return batch_norm_relu(z, *norm2_, fuse_norm_relu_, /*statistics=*/nullptr, use);
}

DownImpl::DownImpl(int64_t in_channels, int64_t out_channels, ConvStyle style)
    : maxpool_conv_(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)),
                    DoubleConv(in_channels, out_channels, out_channels, style)),
      conv_(maxpool_conv_->ptr<DoubleConvImpl>(1)),
      pool_concat_kernels_(style.pool_concat_kernels) {
  register_module("maxpool_conv", maxpool_conv_);
}

torch::Tensor DownImpl::run(const torch::Tensor& x, OutputUse use) {
  return conv_->run(max_pool_2x2(x, pool_concat_kernels_), use);
}

UpImpl::UpImpl(int64_t in_channels, int64_t out_channels, bool bilinear, ConvStyle style)
    : padding_(style.padding), pool_concat_kernels_(style.pool_concat_kernels) {
  if (bilinear) {
    up_bilinear_ = register_module("up", torch::nn::Upsample(torch::nn::UpsampleOptions()
                                                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                                                 .mode(torch::kBilinear)
                                                                 .align_corners(true)));
    conv_ = register_module("conv", DoubleConv(in_channels, out_channels, in_channels / 2, style));
  } else {
    up_transposed_ = register_module(
        "up", torch::nn::ConvTranspose2d(
                  torch::nn::ConvTranspose2dOptions(in_channels, in_channels / 2, /*kernel_size=*/2).stride(2)));
    conv_ = register_module("conv", DoubleConv(in_channels, out_channels, out_channels, style));
  }
}

torch::Tensor UpImpl::run(const torch::Tensor& below, const torch::Tensor& skip, OutputUse use) {
  torch::Tensor up = up_bilinear_ ? up_bilinear_->forward(below) : up_transposed_->forward(below);
  int64_t top = 0, left = 0;  // of the skip's window matching up
  if (padding_ == Padding::kValid) {
    top = (skip.size(2) - up.size(2)) / 2;  // the centre crop
    left = (skip.size(3) - up.size(3)) / 2;
  } else {
    // Pooling floored odd sizes: pad back, the odd extra row/column on the bottom/right.
    const int64_t dy = skip.size(2) - up.size(2);
    const int64_t dx = skip.size(3) - up.size(3);
    if (dy != 0 || dx != 0) {
      namespace F = torch::nn::functional;
      up = F::pad(up, F::PadFuncOptions({dx / 2, dx - dx / 2, dy / 2, dy - dy / 2}));
    }
  }
  if (split_skip_conv_) {
    return conv_->run_split(skip_window(skip, top, left, up.size(2), up.size(3)), up, use);
  }
  return conv_->run(concat_skip(skip, up, top, left, pool_concat_kernels_), use);
}

OutConvImpl::OutConvImpl(int64_t in_channels, int64_t out_channels)
    : conv_(torch::nn::Conv2dOptions(in_channels, out_channels, /*kernel_size=*/1)) {
  register_module("conv", conv_);
}

torch::Tensor OutConvImpl::forward(const torch::Tensor& x) {
  return conv_->forward(x);
}

}  // namespace dpunet::model
