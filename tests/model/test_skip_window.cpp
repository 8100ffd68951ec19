// skip_window: the window's values are the narrowed map's, and its gradient is narrow's
// gradient laid out like the skip map (NHWC for an NHWC map), to a second derivative.
#include <torch/torch.h>
#include "support/catch.h"

#include "common/error.h"
#include "model/skip_window.h"

using dpunet::model::skip_window;

namespace {

// The gradient the skip map receives through `window` for the upstream gradient `dy`, as
// backward made it (a leaf's .grad() would be re-laid out like the leaf).
template <typename Window>
torch::Tensor skip_grad(Window window, const torch::Tensor& skip, const torch::Tensor& dy) {
  const torch::Tensor leaf = skip.detach().clone().requires_grad_(true);
  return torch::autograd::grad({window(leaf)}, {leaf}, {dy})[0];
}

}  // namespace

TEST_CASE("skip_window's gradient is narrow's, in the skip map's layout", "[model]") {
  torch::manual_seed(5);
  const auto format = GENERATE(at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast);
  INFO("layout " << format);
  const torch::Tensor skip = torch::randn({2, 8, 11, 13}).contiguous(format);
  const int64_t top = 2, left = 3, height = 6, width = 7;
  const torch::Tensor dy = torch::randn({2, 8, height, width}).contiguous(format);

  const torch::Tensor ours =
      skip_grad([&](const torch::Tensor& s) { return skip_window(s, top, left, height, width); }, skip, dy);
  const torch::Tensor aten =
      skip_grad([&](const torch::Tensor& s) { return s.narrow(2, top, height).narrow(3, left, width); }, skip, dy);
  CHECK(torch::equal(skip_window(skip, top, left, height, width), skip.narrow(2, top, height).narrow(3, left, width)));
  CHECK(torch::equal(ours, aten));
  CHECK(ours.is_contiguous(format));
  // The test holds only where ATen's own gradient is laid out otherwise: NCHW always.
  if (format == at::MemoryFormat::ChannelsLast) CHECK_FALSE(aten.is_contiguous(format));
}

TEST_CASE("skip_window is the skip map itself when the window is all of it", "[model]") {
  const torch::Tensor skip = torch::randn({1, 4, 6, 6}).requires_grad_(true);
  CHECK(skip_window(skip, 0, 0, 6, 6).is_same(skip));
}

TEST_CASE("skip_window's gradient has a derivative of its own", "[model]") {
  // A second derivative through the window: d/dx of sum(dL/dx) for L = sum(window^3) is 6x
  // inside the window, 0 outside.
  const torch::Tensor x = torch::randn({1, 2, 7, 7}, torch::kFloat64).requires_grad_(true);
  const torch::Tensor first =
      torch::autograd::grad({skip_window(x, 1, 2, 4, 3).pow(3).sum()}, {x}, {}, /*retain_graph=*/true,
                            /*create_graph=*/true)[0];
  const torch::Tensor second = torch::autograd::grad({first.sum()}, {x})[0];
  torch::Tensor expected = torch::zeros_like(x);
  expected.narrow(2, 1, 4).narrow(3, 2, 3).copy_(6 * x.detach().narrow(2, 1, 4).narrow(3, 2, 3));
  CHECK(torch::allclose(second, expected));
}

TEST_CASE("skip_window names the sizes of a window outside the map", "[model]") {
  const torch::Tensor skip = torch::randn({1, 4, 6, 6});
  CHECK_THROWS_WITH(skip_window(skip, 2, 0, 5, 6), HasSubstr("[1, 4, 6, 6]") && HasSubstr("5x6 window"));
  CHECK_THROWS_AS(skip_window(skip.view({4, 6, 6}), 0, 0, 6, 6), dpunet::Error);
}

TEST_CASE("skip_window's gradient is narrow's and NHWC for an NHWC bf16 map on a GPU", "[gpu]") {
  if (!torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU");
    return;
  }
  const auto nhwc = at::MemoryFormat::ChannelsLast;
  const auto options = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  const torch::Tensor skip = torch::randn({2, 16, 20, 20}, options).contiguous(nhwc);
  const torch::Tensor dy = torch::randn({2, 16, 12, 12}, options).contiguous(nhwc);
  const torch::Tensor ours = skip_grad([](const torch::Tensor& s) { return skip_window(s, 4, 4, 12, 12); }, skip, dy);
  const torch::Tensor aten =
      skip_grad([](const torch::Tensor& s) { return s.narrow(2, 4, 12).narrow(3, 4, 12); }, skip, dy);
  CHECK(torch::equal(ours.cpu(), aten.cpu()));
  CHECK(ours.is_contiguous(nhwc));
}
