// concat_skip: the decoder's concatenation and its split backward against ATen's narrow +
// cat, bit for bit (backward only moves values). The split's index arithmetic runs on the
// host here; the kernel itself needs a GPU ([gpu], skipped without one).
#include <torch/torch.h>
#include "support/catch.h"

#include "model/concat_split_kernels.h"
#include "model/skip_concat.h"
#include "model/unet.h"
#include "support/own_kernels.h"
#include "support/tensor_compare.h"
#include "support/unet_gpu_step.h"

using dpunet::model::concat_skip;
using dpunet::model::concat_skip_split_backward;
using dpunet::model::concat_split_kernel_applies;
using dpunet::test::own_kernels_runnable;
using dpunet::test::same_bits;

namespace {

struct Case {
  std::vector<int64_t> skip, up;  // NCHW sizes
  int64_t top, left;
};

// Same padding (the whole skip), valid padding's centre crops, an off-centre window,
// unequal widths, and one row. (A 1x1 map's layout is ambiguous: ATen calls it NCHW.)
std::vector<Case> cases_for(int64_t unit) {
  return {{{2, 2 * unit, 6, 5}, {2, 2 * unit, 6, 5}, 0, 0},
          {{2, unit, 9, 8}, {2, 3 * unit, 5, 4}, 2, 2},
          {{3, 4 * unit, 7, 7}, {3, unit, 3, 5}, 1, 0},
          {{1, unit, 12, 10}, {1, unit, 4, 4}, 8, 3},
          {{1, unit, 1, 3}, {1, 2 * unit, 1, 3}, 0, 0}};
}

struct Outcome {
  torch::Tensor out, skip_grad, up_grad;
};

Outcome run(const Case& c, torch::ScalarType type, const torch::Device& device, bool split) {
  torch::manual_seed(3);
  const auto options = torch::TensorOptions().dtype(type).device(device);
  const torch::Tensor skip =
      torch::randn(c.skip, options).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  const torch::Tensor up = torch::randn(c.up, options).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  const torch::Tensor out = split ? concat_skip_split_backward(skip, up, c.top, c.left)
                                  : torch::cat({skip.narrow(2, c.top, c.up[2]).narrow(3, c.left, c.up[3]), up}, 1);
  // A gradient in NCHW order, so backward also has to bring it to NHWC itself.
  const torch::Tensor grad = torch::randn(out.sizes(), options);
  // The gradients as backward made them: a leaf's .grad() would be re-laid out like the leaf.
  const auto grads = torch::autograd::grad({out}, {skip, up}, {grad});
  return {out.detach().cpu(), grads[0].cpu(), grads[1].cpu()};
}

void check_split_matches_aten(torch::ScalarType type, const torch::Device& device) {
  const int64_t unit = 16 / torch::elementSize(type);  // channels per 16-byte vector
  for (const Case& c : cases_for(unit)) {
    INFO("skip " << at::IntArrayRef(c.skip) << ", up " << at::IntArrayRef(c.up) << " at (" << c.top << ", " << c.left
                 << "), type " << type);
    const Outcome split = run(c, type, device, true);
    const Outcome aten = run(c, type, device, false);
    CHECK(same_bits(split.out, aten.out));
    CHECK(same_bits(split.skip_grad, aten.skip_grad));
    CHECK(same_bits(split.up_grad, aten.up_grad));
    CHECK(split.skip_grad.is_contiguous(at::MemoryFormat::ChannelsLast));
    CHECK(split.up_grad.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}

}  // namespace

TEST_CASE("the concatenation's split backward matches ATen's cat backward (host reference)", "[model]") {
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
    check_split_matches_aten(type, torch::kCPU);
  }
}

TEST_CASE("the split's 32-bit index arithmetic (the kernel's) equals the 64-bit one", "[model]") {
  using dpunet::model::cuda::ConcatGeometry;
  using dpunet::model::cuda::split_target;
  // A cropped window in a skip with more vectors per pixel than the upsampled part, so
  // every branch and each division's remainder is taken.
  ConcatGeometry g;
  g.batch = 3, g.height = 7, g.width = 5, g.skip_height = 11, g.skip_width = 9, g.top = 2, g.left = 3;
  g.skip_vectors = 3, g.up_vectors = 2;
  int64_t to_skip = 0;
  for (int64_t v = 0; v < g.total_vectors(); ++v) {
    const auto narrow = split_target<uint32_t>(g, static_cast<uint32_t>(v));
    const auto wide = split_target<int64_t>(g, v);
    REQUIRE(narrow.to_skip == wide.to_skip);
    REQUIRE(narrow.index == wide.index);
    to_skip += wide.to_skip ? 1 : 0;
  }
  CHECK(to_skip == g.batch * g.height * g.width * g.skip_vectors);
}

TEST_CASE("concat_skip takes ATen's cat off the GPU and refuses a window outside the skip", "[model]") {
  const torch::Tensor skip = torch::randn({1, 8, 6, 6}).requires_grad_(true);
  const torch::Tensor up = torch::randn({1, 8, 4, 4}).requires_grad_(true);
  CHECK_FALSE(concat_split_kernel_applies(skip, up));
  const torch::Tensor out = concat_skip(skip, up, 1, 1);
  CHECK(torch::equal(out, torch::cat({skip.narrow(2, 1, 4).narrow(3, 1, 4), up}, 1)));
  CHECK_THROWS_WITH(concat_skip(skip, up, 3, 0), HasSubstr("skip map of [1, 8, 6, 6]") && HasSubstr("offset (3, 0)"));
  // Channel bytes that are not whole 16-byte vectors: the split refuses, naming both maps.
  const torch::Tensor odd = torch::randn({1, 6, 4, 4});
  CHECK_THROWS_WITH(concat_skip_split_backward(skip, odd, 1, 1), HasSubstr("[1, 6, 4, 4]"));
}

TEST_CASE("the concatenation's split kernel matches ATen's cat backward on a GPU", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    const int64_t unit = 16 / torch::elementSize(type);
    const torch::Tensor map = torch::randn({1, unit, 2, 2}, torch::TensorOptions().dtype(type).device(device))
                                  .contiguous(at::MemoryFormat::ChannelsLast);
    REQUIRE(concat_split_kernel_applies(map, map));
    check_split_matches_aten(type, device);
  }
  // Large enough that every thread of the grid-stride loop takes several vectors.
  const Case large{{4, 64, 150, 150}, {4, 64, 146, 146}, 2, 2};
  const Outcome split = run(large, torch::kBFloat16, device, true);
  const Outcome aten = run(large, torch::kBFloat16, device, false);
  CHECK(same_bits(split.skip_grad, aten.skip_grad));
  CHECK(same_bits(split.up_grad, aten.up_grad));
}

TEST_CASE("a U-Net step with dpunet's pooling and concatenation kernels gives ATen's gradients bit for bit on a GPU",
          "[gpu]") {
  if (!own_kernels_runnable()) return;
  for (auto padding : {dpunet::model::Padding::kSame, dpunet::model::Padding::kValid}) {
    std::vector<dpunet::test::UnetGpuStep> steps;
    for (bool kernels : {true, false}) {
      dpunet::model::UnetOptions o;
      o.n_classes = 3;
      o.base_channels = 16;
      o.depth = 2;
      o.padding = padding;
      o.pool_concat_kernels = kernels;
      // Same padding at 70 pools an odd 35 (and pads the upsampled 34 back to 35); 68 is
      // a size valid padding can tile.
      steps.push_back(dpunet::test::unet_gpu_step(o, padding == dpunet::model::Padding::kSame ? 70 : 68));
    }
    INFO("padding " << dpunet::model::to_string(padding));
    // Every pooling and concatenation of the model took dpunet's kernels.
    const auto& usage = steps[0].usage;
    CHECK(usage.max_pool.ours == 2);
    CHECK(usage.max_pool.aten == 0);
    CHECK(usage.concat.ours == 2);
    CHECK(usage.concat.aten == 0);
    for (size_t i = 0; i < steps[0].grads.size(); ++i) CHECK(same_bits(steps[0].grads[i], steps[1].grads[i]));
  }
}
