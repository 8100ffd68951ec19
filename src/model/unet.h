// The U-Net (Ronneberger et al. 2015) as in the widely used PyTorch reference: same
// blocks, widths, parameter counts and state_dict names, plus optional width, depth,
// normalisation, valid padding and per-block activation checkpointing.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "model/unet_options.h"
#include "model/unet_parts.h"

namespace dpunet::model {

// Which blocks use_checkpointing() recomputes in backward.
enum class CheckpointPolicy {
  // The blocks that buy the most memory per recomputed FLOP. Every level costs about the
  // same FLOPs but holds half the activations of the level above, so the two deepest
  // levels are kept; so is the last decoder block, whose recomputation would run at the
  // start of backward while its activations still make the peak. On CPU at 256x256 this
  // keeps 0.55x of the plain peak at 1.2x the step time (docs/benchmarks.md).
  kBalanced,
  kAll,  // every block, as the reference's use_checkpointing() intends
  // Every block but the last decoder block and outc, and the decoder's first
  // convolutions on the skip and upsampled maps as two inputs (split_skip_convolutions).
  // The peak lies inside the last decoder block's backward, whether that block was
  // recomputed or kept, so it is not recomputed; the split keeps its full-resolution skip
  // map once instead of twice (the first encoder block's and a copy in the
  // concatenation). The one policy whose results differ from the plain model's, in the
  // last bits. On CPU at 256x256: 0.44x of the plain peak (kAll: 0.48x).
  kMinMemory,
  // No whole block: only each DoubleConv's first BatchNorm+ReLU output (recompute_norm_
  // outputs). One normalise pass per block; on CPU at 256x256 it keeps 0.87x of the plain
  // peak at no measurable time (docs/benchmarks.md).
  kNormRelu,
};

// "balanced" | "all" | "min_memory" | "norm_relu"; throws dpunet::Error naming the value otherwise.
CheckpointPolicy parse_checkpoint_policy(const std::string& name);

class UnetImpl : public torch::nn::Module {
 public:
  explicit UnetImpl(const UnetOptions& options);
  UnetImpl(int64_t n_channels, int64_t n_classes, bool bilinear = false);

  // [N, n_channels, H, W] -> [N, n_classes, H', W'] logits; H' = H when padding is same.
  torch::Tensor forward(const torch::Tensor& x);

  // Turns activation checkpointing on (for the blocks `policy` selects) or off (all).
  // Every policy also recomputes each DoubleConv's first BatchNorm+ReLU output in
  // backward (recompute_norm_outputs), except while a checkpointed block is recomputed:
  // its backward follows at once, and the map is kept. kMinMemory also splits the skip
  // convolutions; turning checkpointing off or choosing another policy unsplits them.
  void use_checkpointing(bool enabled = true, CheckpointPolicy policy = CheckpointPolicy::kBalanced);
  // In every Up block, the first convolution takes the skip and the upsampled map as two
  // inputs instead of their concatenation (UpImpl::split_skip_conv): each skip map is kept
  // for backward once, where the concatenation would hold a copy of it beside the one the
  // encoder keeps. The same FLOPs; results differ in the last bits.
  void split_skip_convolutions(bool enabled);
  bool splits_skip_convolutions() const { return ups_.front()->splits_skip_conv(); }
  // In every DoubleConv with BatchNorm, the second convolution's input is recomputed in
  // backward from the BatchNorm input (model/norm_relu_conv.h) rather than kept: one
  // normalise pass per block for one map of the block's width less. Other norms keep it,
  // and recomputes_norm_outputs() stays false.
  void recompute_norm_outputs(bool enabled);
  bool recomputes_norm_outputs() const { return inc_->recomputes_norm_output(); }
  // Checkpoints one block by name: inc, down1..downD, up1..upD, outc.
  void set_checkpointing(const std::string& block, bool enabled);
  bool is_checkpointed(const std::string& block) const;
  std::vector<std::string> block_names() const;

  const UnetOptions& options() const { return options_; }

 private:
  size_t block_index(const std::string& block) const;
  int64_t block_level(size_t index) const;  // resolution level of a block's output
  void check_input(const torch::Tensor& x) const;

  UnetOptions options_;
  DoubleConv inc_{nullptr};
  std::vector<Down> downs_;
  std::vector<Up> ups_;
  OutConv outc_{nullptr};
  std::vector<bool> checkpointed_;  // per block, in block_names() order
};
TORCH_MODULE(Unet);

}  // namespace dpunet::model

namespace dpunet {
using model::Unet;
using model::UnetOptions;
}  // namespace dpunet
