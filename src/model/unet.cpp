// Unet assembly and forward pass, with per-block activation checkpointing.
#include "model/unet.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "common/recompute_tape.h"
#include "model/activation_checkpoint.h"

namespace dpunet::model {
namespace {

std::string shape_string(const torch::Tensor& x) {
  std::ostringstream out;
  out << x.sizes();
  return out.str();
}

// A checkpointed block's run function runs in forward, where the next block reads its
// output, and in backward's recomputation, where the output only roots the nested
// backward that follows (model/output_use.h).
OutputUse block_output_use() {
  const RecomputeTape* tape = RecomputeTape::active();
  return tape != nullptr && tape->replaying() ? OutputUse::kGradientOnly : OutputUse::kRead;
}

std::string join(const std::vector<int64_t>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i ? " or " : "") << values[i];
  return out.str();
}

}  // namespace

UnetImpl::UnetImpl(int64_t n_channels, int64_t n_classes, bool bilinear)
    : UnetImpl([&] {
        UnetOptions o;
        o.n_channels = n_channels;
        o.n_classes = n_classes;
        o.bilinear = bilinear;
        return o;
      }()) {}

UnetImpl::UnetImpl(const UnetOptions& options) : options_(options) {
  validate(options_);
  const ConvStyle style{options_.norm, options_.padding, options_.communicator, options_.fuse_norm_relu,
                        options_.pool_concat_kernels};
  const int64_t depth = options_.depth;
  const int64_t factor = options_.bilinear ? 2 : 1;  // bilinear decoders halve the bottom width
  auto width = [&](int64_t level) { return options_.base_channels << level; };

  inc_ = register_module("inc", DoubleConv(options_.n_channels, width(0), width(0), style));
  for (int64_t i = 1; i <= depth; ++i) {
    const int64_t out = i == depth ? width(i) / factor : width(i);
    downs_.push_back(register_module("down" + std::to_string(i), Down(width(i - 1), out, style)));
  }
  for (int64_t j = 1; j <= depth; ++j) {
    const int64_t level = depth - j;  // the level this Up produces
    const int64_t out = j == depth ? width(level) : width(level) / factor;
    ups_.push_back(register_module("up" + std::to_string(j), Up(width(level + 1), out, options_.bilinear, style)));
  }
  outc_ = register_module("outc", OutConv(width(0), options_.n_classes));
  checkpointed_.assign(block_names().size(), false);
}

std::vector<std::string> UnetImpl::block_names() const {
  std::vector<std::string> names{"inc"};
  for (int64_t i = 1; i <= options_.depth; ++i) names.push_back("down" + std::to_string(i));
  for (int64_t i = 1; i <= options_.depth; ++i) names.push_back("up" + std::to_string(i));
  names.push_back("outc");
  return names;
}

size_t UnetImpl::block_index(const std::string& block) const {
  const auto names = block_names();
  const auto it = std::find(names.begin(), names.end(), block);
  if (it == names.end()) {
    std::ostringstream valid;
    for (const auto& n : names) valid << " " << n;
    DPUNET_FAIL("Unet has no block '", block, "'; blocks are:", valid.str());
  }
  return static_cast<size_t>(it - names.begin());
}

int64_t UnetImpl::block_level(size_t index) const {
  const auto depth = static_cast<size_t>(options_.depth);
  if (index <= depth) return static_cast<int64_t>(index);                  // inc, down1..downD
  if (index <= 2 * depth) return static_cast<int64_t>(2 * depth - index);  // up1..upD
  return 0;                                                                // outc
}

CheckpointPolicy parse_checkpoint_policy(const std::string& name) {
  if (name == "balanced") return CheckpointPolicy::kBalanced;
  if (name == "all") return CheckpointPolicy::kAll;
  if (name == "min_memory") return CheckpointPolicy::kMinMemory;
  if (name == "norm_relu") return CheckpointPolicy::kNormRelu;
  DPUNET_FAIL("checkpointing policy must be balanced, all, min_memory or norm_relu, got '", name, "'");
}

void UnetImpl::use_checkpointing(bool enabled, CheckpointPolicy policy) {
  const size_t last_decoder = 2 * static_cast<size_t>(options_.depth);
  const int64_t deepest_kept = std::max<int64_t>(options_.depth - 2, 0);
  for (size_t i = 0; i < checkpointed_.size(); ++i) {
    const bool before_last_decoder = i < last_decoder;
    const bool balanced = block_level(i) <= deepest_kept && before_last_decoder;
    const bool selected = policy == CheckpointPolicy::kAll ||
                          (policy == CheckpointPolicy::kMinMemory && before_last_decoder) ||
                          (policy == CheckpointPolicy::kBalanced && balanced);
    checkpointed_[i] = enabled && selected;
  }
  recompute_norm_outputs(enabled);
  split_skip_convolutions(enabled && policy == CheckpointPolicy::kMinMemory);
}

void UnetImpl::split_skip_convolutions(bool enabled) {
  for (auto& up : ups_) up->split_skip_conv(enabled);
}

void UnetImpl::recompute_norm_outputs(bool enabled) {
  inc_->recompute_norm_output(enabled);
  for (auto& down : downs_) down->double_conv().recompute_norm_output(enabled);
  for (auto& up : ups_) up->double_conv().recompute_norm_output(enabled);
}

void UnetImpl::set_checkpointing(const std::string& block, bool enabled) {
  checkpointed_[block_index(block)] = enabled;
}

bool UnetImpl::is_checkpointed(const std::string& block) const {
  return checkpointed_[block_index(block)];
}

void UnetImpl::check_input(const torch::Tensor& x) const {
  DPUNET_CHECK(x.defined() && x.dim() == 4, "Unet expects input [N, C=", options_.n_channels, ", H, W], got ",
               x.defined() ? shape_string(x) : "an undefined tensor");
  DPUNET_CHECK(x.size(1) == options_.n_channels, "Unet expects ", options_.n_channels,
               " input channel(s) (n_channels), got input ", shape_string(x));
  DPUNET_CHECK(x.is_floating_point(), "Unet expects floating-point input (normalised pixels), got ", x.scalar_type(),
               " input ", shape_string(x));
  DPUNET_CHECK(x.size(0) > 0, "Unet expects at least one sample, got input ", shape_string(x));
  for (int dim : {2, 3}) {
    const int64_t size = x.size(dim);
    if (output_size(options_, size)) continue;
    if (options_.padding == Padding::kValid) {
      DPUNET_FAIL("Unet(padding=valid, depth=", options_.depth, ") cannot tile input size ", size, " (input ",
                  shape_string(x), "); nearest valid sizes: ", join(nearest_valid_sizes(options_, size)));
    }
    DPUNET_FAIL("Unet(depth=", options_.depth, ") needs H and W >= ", int64_t{1} << options_.depth, ", got input ",
                shape_string(x));
  }
}

torch::Tensor UnetImpl::forward(const torch::Tensor& x) {
  check_input(x);
  using Inputs = std::vector<torch::Tensor>;
  size_t block = 0;  // index into checkpointed_, in block_names() order
  // The next block on `in`: `call(inputs, use)` runs it, through a checkpoint when selected.
  auto run = [&](torch::nn::Module& module, const Inputs& in, auto call) {
    if (!checkpointed_[block++]) return call(in, OutputUse::kRead);
    // Kept for backward's recomputation: `call` by value, holding its block's module
    // (backward may run after this Unet is gone, as autograd lets it).
    auto fn = [call](const std::vector<torch::Tensor>& v) {
      return std::vector<torch::Tensor>{call(v, block_output_use())};
    };
    return checkpoint(module, fn, in).front();
  };

  // [N, base * 2^i, H / 2^i, W / 2^i]
  std::vector<torch::Tensor> skips{
      run(*inc_, {x}, [inc = inc_.ptr()](const Inputs& v, OutputUse use) { return inc->run(v[0], use); })};
  for (auto& down : downs_) {
    skips.push_back(run(*down, {skips.back()},
                        [down = down.ptr()](const Inputs& v, OutputUse use) { return down->run(v[0], use); }));
  }

  // Each skip is dropped once used so inference frees maps as early as it can.
  torch::Tensor y = std::move(skips.back());
  skips.pop_back();
  for (Up& up : ups_) {
    const torch::Tensor skip = std::move(skips.back());
    skips.pop_back();
    y = run(*up, {y, skip}, [up = up.ptr()](const Inputs& v, OutputUse use) { return up->run(v[0], v[1], use); });
  }
  // outc has no BatchNorm: nothing of it to skip.
  return run(*outc_, {y}, [outc = outc_.ptr()](const Inputs& v, OutputUse) { return outc->forward(v[0]); });
}

}  // namespace dpunet::model
