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

class UnetImpl : public torch::nn::Module {
 public:
  explicit UnetImpl(const UnetOptions& options);
  UnetImpl(int64_t n_channels, int64_t n_classes, bool bilinear = false);

  // [N, n_channels, H, W] -> [N, n_classes, H', W'] logits; H' = H when padding is same.
  torch::Tensor forward(const torch::Tensor& x);

  // Checkpoints every block (the reference's method of the same name).
  void use_checkpointing(bool enabled = true);
  // Checkpoints one block by name: inc, down1..downD, up1..upD, outc.
  void set_checkpointing(const std::string& block, bool enabled);
  bool is_checkpointed(const std::string& block) const;
  std::vector<std::string> block_names() const;

  const UnetOptions& options() const { return options_; }

 private:
  size_t block_index(const std::string& block) const;
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
