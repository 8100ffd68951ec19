// split_input_conv2d: the convolution of a concatenation computed from its parts gives
// the one convolution's values and gradients to rounding, on the CPU and a GPU. The
// U-Net's use of it: tests/model/test_unet_checkpointing.cpp.
#include <torch/torch.h>
#include "support/catch.h"

#include "common/autocast_scope.h"
#include "model/split_input_conv.h"
#include "support/tensor_compare.h"

using dpunet::model::split_input_conv2d;

namespace {

struct Outcome {
  torch::Tensor out, a_grad, b_grad, weight_grad, bias_grad;
};

// Values and gradients of `conv(a, b, weight, bias)` for the gradient `dy`.
template <typename Conv>
Outcome run(Conv conv, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& weight,
            const torch::Tensor& bias, const torch::Tensor& dy) {
  auto leaf = [](const torch::Tensor& t) { return t.defined() ? t.detach().clone().requires_grad_(true) : t; };
  const torch::Tensor la = leaf(a), lb = leaf(b), lw = leaf(weight), lbias = leaf(bias);
  const torch::Tensor out = conv(la, lb, lw, lbias);
  out.backward(dy);
  return {out.detach(), la.grad(), lb.grad(), lw.grad(), lbias.defined() ? lbias.grad() : torch::Tensor()};
}

}  // namespace

TEST_CASE("split_input_conv2d is the convolution of the concatenation", "[model]") {
  torch::manual_seed(3);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  for (int64_t padding : {0, 1}) {
    for (bool with_bias : {false, true}) {
      INFO("padding " << padding << ", bias " << with_bias);
      const torch::Tensor a = torch::randn({2, 3, 9, 7}, f64);
      const torch::Tensor b = torch::randn({2, 5, 9, 7}, f64);
      const torch::Tensor weight = torch::randn({4, 8, 3, 3}, f64);
      const torch::Tensor bias = with_bias ? torch::randn({4}, f64) : torch::Tensor();
      const int64_t side = 9 - 2 + 2 * padding;
      const torch::Tensor dy = torch::randn({2, 4, side, 7 - 2 + 2 * padding}, f64);
      const Outcome split = run([&](auto x, auto y, auto w, auto c) { return split_input_conv2d(x, y, w, c, padding); },
                                a, b, weight, bias, dy);
      const Outcome whole = run(
          [&](auto x, auto y, auto w, auto c) {
            return torch::conv2d(torch::cat({x, y}, 1), w, c, 1, padding);
          },
          a, b, weight, bias, dy);
      REQUIRE(split.out.sizes() == whole.out.sizes());
      CHECK(torch::allclose(split.out, whole.out, 1e-12, 1e-12));
      CHECK(torch::allclose(split.a_grad, whole.a_grad, 1e-12, 1e-12));
      CHECK(torch::allclose(split.b_grad, whole.b_grad, 1e-12, 1e-12));
      CHECK(torch::allclose(split.weight_grad, whole.weight_grad, 1e-12, 1e-12));
      if (with_bias) CHECK(torch::allclose(split.bias_grad, whole.bias_grad, 1e-12, 1e-12));
    }
  }
}

TEST_CASE("split_input_conv2d's weight gradient keeps an NHWC weight's layout", "[model]") {
  // Training's weights are NHWC on a GPU (train::use_channels_last_weights): an NCHW
  // gradient would be transposed into the weight's .grad at every step.
  const auto nhwc = at::MemoryFormat::ChannelsLast;
  const torch::Tensor a = torch::randn({2, 3, 9, 7}).contiguous(nhwc);
  const torch::Tensor b = torch::randn({2, 5, 9, 7}).contiguous(nhwc);
  const torch::Tensor weight = torch::randn({4, 8, 3, 3}).contiguous(nhwc).requires_grad_(true);
  // As backward made it: a leaf's .grad() would be re-laid out like the leaf.
  const torch::Tensor grad = torch::autograd::grad({split_input_conv2d(a, b, weight, {}, 1).sum()}, {weight})[0];
  CHECK(grad.is_contiguous(nhwc));
  CHECK_FALSE(grad.is_contiguous());
}

TEST_CASE("split_input_conv2d refuses maps that do not make the weight's input", "[model]") {
  const torch::Tensor weight = torch::randn({4, 8, 3, 3});
  CHECK_THROWS_WITH(split_input_conv2d(torch::randn({1, 3, 6, 6}), torch::randn({1, 4, 6, 6}), weight, {}, 1),
                    HasSubstr("[1, 3, 6, 6]") && HasSubstr("[1, 4, 6, 6]") && HasSubstr("[4, 8, 3, 3]") &&
                        HasSubstr("8 input channels"));
  CHECK_THROWS_WITH(split_input_conv2d(torch::randn({1, 3, 6, 6}), torch::randn({1, 5, 6, 5}), weight, {}, 1),
                    HasSubstr("[1, 5, 6, 5]"));
}

TEST_CASE("split_input_conv2d is the convolution of the concatenation on a GPU, NHWC, in float32 and bf16", "[gpu]") {
  if (!torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU");
    return;
  }
  auto& context = at::globalContext();
  const bool tf32 = context.allowTF32CuDNN();
  context.setAllowTF32CuDNN(false);
  torch::manual_seed(5);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  auto nhwc = [](const torch::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast); };
  const torch::Tensor a = nhwc(torch::randn({4, 64, 40, 40}, cuda));
  const torch::Tensor b = nhwc(torch::randn({4, 64, 40, 40}, cuda));
  const torch::Tensor weight = nhwc(torch::randn({64, 128, 3, 3}, cuda) * 0.05);
  const torch::Tensor dy = nhwc(torch::randn({4, 64, 40, 40}, cuda));
  for (const bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16 autocast" : "float32, TF32 off"));
    auto under_autocast = [bf16](auto conv) {
      return [bf16, conv](auto x, auto y, auto w, auto c) {
        const dpunet::AutocastScope scope(bf16, at::kBFloat16);
        return conv(x, y, w, c).to(torch::kFloat);
      };
    };
    const Outcome split =
        run(under_autocast([](auto x, auto y, auto w, auto c) { return split_input_conv2d(x, y, w, c, 1); }), a, b,
            weight, torch::Tensor(), dy);
    const Outcome whole = run(under_autocast([](auto x, auto y, auto w, auto c) {
                                return torch::conv2d(torch::cat({x, y}, 1), w, c, 1, 1);
                              }),
                              a, b, weight, torch::Tensor(), dy);
    // bf16: each part and the sum rounded to 8 bits of mantissa (2^-9 relative each).
    const double tolerance = bf16 ? 2e-2 : 1e-5;
    CHECK(dpunet::test::within_scale(split.out, whole.out, tolerance));
    CHECK(dpunet::test::within_scale(split.a_grad, whole.a_grad, tolerance));
    CHECK(dpunet::test::within_scale(split.b_grad, whole.b_grad, tolerance));
    CHECK(dpunet::test::within_scale(split.weight_grad, whole.weight_grad, tolerance));
  }
  context.setAllowTF32CuDNN(tf32);
}
