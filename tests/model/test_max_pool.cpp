// max_pool_2x2 without indices against ATen's max_pool2d: values, where the gradient
// lands among tied maxima and NaNs, and a -0 gradient. The kernels' positions and vector
// addressing run on the host here, through their host reference; the kernels themselves
// need a GPU ([gpu], skipped without one), where they match ATen's bit for bit.
#include <limits>

#include <torch/torch.h>
#include "support/catch.h"

#include "model/max_pool.h"
#include "model/max_pool_kernels.h"
#include "support/own_kernels.h"
#include "support/tensor_compare.h"

using dpunet::model::max_pool_2x2;
using dpunet::model::max_pool_2x2_without_indices;
using dpunet::model::max_pool_kernels_apply;
using dpunet::test::own_kernels_runnable;
using dpunet::test::same_bits;
using dpunet::test::same_bits_or_both_nan;

namespace {

struct Outcome {
  torch::Tensor y, dx;
};

// Values from a small set, so windows hold ties; a NaN in one window and two in another;
// and an output gradient with -0 in it.
Outcome run(const std::vector<int64_t>& shape, torch::ScalarType type, const torch::Device& device,
            bool without_indices) {
  torch::manual_seed(7);
  torch::Tensor x = torch::randint(-3, 4, shape).to(torch::kFloat);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  x.index_put_({0, 0, 0, 1}, nan);
  if (shape[2] >= 4 && shape[3] >= 4) {  // two NaNs in one window: ATen takes the last
    x.index_put_({0, 0, 2, 2}, nan);
    x.index_put_({0, 0, 3, 3}, nan);
  }
  x = x.to(type).to(device).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  const torch::Tensor y = without_indices ? max_pool_2x2_without_indices(x) : torch::max_pool2d(x, {2, 2});
  torch::Tensor grad = torch::randn(y.sizes()).to(type);
  grad.index_put_({0, 0, 0, 0}, -0.0);
  y.backward(grad.to(device));
  return {y.detach().cpu(), x.grad().cpu()};
}

// `exact`: the bits of NaNs and of zeros must match too (ATen's CUDA kernels move values
// as they are, as ours do; its CPU kernels store NaNs in a canonical form and add a
// gradient of -0 to +0).
void check_matches_aten(torch::ScalarType type, const torch::Device& device, bool exact) {
  const int64_t unit = 16 / torch::elementSize(type);  // channels per 16-byte vector
  // Even and odd sizes (an odd last row or column is not pooled), several vectors of
  // channels, one window.
  const std::vector<std::vector<int64_t>> shapes = {
      {2, unit, 8, 6}, {1, 3 * unit, 9, 7}, {3, 2 * unit, 5, 10}, {1, unit, 2, 2}, {2, 4 * unit, 4, 5}};
  for (const auto& shape : shapes) {
    INFO("shape " << at::IntArrayRef(shape) << ", type " << type);
    const Outcome ours = run(shape, type, device, true);
    const Outcome aten = run(shape, type, device, false);
    CHECK((exact ? same_bits(ours.y, aten.y) : same_bits_or_both_nan(ours.y, aten.y)));
    CHECK((exact ? same_bits(ours.dx, aten.dx) : torch::equal(ours.dx, aten.dx)));
  }
}

}  // namespace

TEST_CASE("max pooling without indices matches ATen's, ties and NaNs included (host reference)", "[model]") {
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf}) check_matches_aten(type, torch::kCPU, false);
}

TEST_CASE("the pooling's 32-bit position arithmetic (the kernels') equals the 64-bit one", "[model]") {
  using dpunet::model::cuda::pool_position;
  dpunet::model::cuda::PoolGeometry g;
  g.batch = 3, g.channels = 24, g.height = 9, g.width = 11;  // odd sizes: floor to 4 x 5
  const int64_t vectors = 3;
  const int64_t total = g.batch * g.out_height() * g.out_width() * vectors;
  int64_t last_n = -1;
  for (int64_t v = 0; v < total; ++v) {
    const auto narrow = pool_position<uint32_t>(g, static_cast<uint32_t>(v), static_cast<uint32_t>(vectors));
    const auto wide = pool_position<int64_t>(g, v, vectors);
    REQUIRE(narrow.n == wide.n);
    REQUIRE(narrow.oh == wide.oh);
    REQUIRE(narrow.ow == wide.ow);
    REQUIRE(narrow.vector == wide.vector);
    REQUIRE(((wide.n * g.out_height() + wide.oh) * g.out_width() + wide.ow) * vectors + wide.vector == v);
    last_n = wide.n;
  }
  CHECK(last_n == g.batch - 1);
}

TEST_CASE("max_pool_2x2 takes ATen's pooling off the GPU and names a map it cannot take", "[model]") {
  const torch::Tensor x = torch::randn({1, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  CHECK_FALSE(max_pool_kernels_apply(x));
  CHECK(torch::equal(max_pool_2x2(x), torch::max_pool2d(x, {2, 2})));
  CHECK_THROWS_WITH(max_pool_2x2_without_indices(torch::randn({1, 6, 4, 4})),
                    HasSubstr("[1, 6, 4, 4]") && HasSubstr("NHWC"));
}

TEST_CASE("max pooling kernels without indices match ATen's on a GPU", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    const torch::Tensor map = torch::randn({1, 16, 4, 4}, torch::TensorOptions().dtype(type).device(device))
                                  .contiguous(at::MemoryFormat::ChannelsLast);
    REQUIRE(max_pool_kernels_apply(map));
    check_matches_aten(type, device, true);
  }
  // Large enough that threads of the grid-stride loops take more than one vector.
  const Outcome ours = run({8, 64, 143, 143}, torch::kBFloat16, device, true);
  const Outcome aten = run({8, 64, 143, 143}, torch::kBFloat16, device, false);
  CHECK(same_bits(ours.y, aten.y));
  CHECK(same_bits(ours.dx, aten.dx));
}
