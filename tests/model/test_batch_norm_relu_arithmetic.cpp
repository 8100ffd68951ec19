// The fused BatchNorm+ReLU kernels' arithmetic on the host: how they split the work and
// their formulas, walked through their grid by the host reference, against ATen's
// BatchNorm then ReLU in double. The kernels themselves need a GPU (test_batch_norm_relu,
// [gpu]); this is what a build without one can check of them.
#include <cmath>

#include <torch/torch.h>
#include "support/catch.h"

#include "model/batch_norm_relu_math.h"
#include "support/batch_norm_relu_exact.h"
#include "support/batch_norm_relu_reference.h"
#include "support/tensor_compare.h"

using dpunet::test::check_close_but_relu;
using dpunet::test::NormReluLayer;
using dpunet::test::NormReluMap;

namespace {

std::vector<float> values_of(const torch::Tensor& t) {
  const torch::Tensor f = t.to(torch::kFloat).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}
torch::Tensor tensor_of(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::tensor(v, torch::kFloat).reshape(shape).to(torch::kDouble);
}

struct Case {
  int64_t rows, channels;
  int multiprocessors;
  double offset;  // added to every value: a mean far from zero must not cancel the variance
};

void check_against_aten(const Case& c) {
  INFO("rows " << c.rows << ", channels " << c.channels << ", multiprocessors " << c.multiprocessors << ", offset "
               << c.offset);
  torch::manual_seed(11);
  const torch::Tensor x = (torch::randn({c.rows, c.channels}) * 2 + c.offset).to(torch::kFloat);
  const torch::Tensor dy = torch::randn({c.rows, c.channels});
  const torch::Tensor weight = torch::rand({c.channels}) + 0.5, bias = torch::rand({c.channels}) - 0.5;
  const torch::Tensor running_mean = torch::rand({c.channels}) * 2 - 1, running_var = torch::rand({c.channels}) + 0.5;

  NormReluLayer layer;
  layer.weight = values_of(weight);
  layer.bias = values_of(bias);
  layer.running_mean = values_of(running_mean);
  layer.running_var = values_of(running_var);
  const NormReluMap map{c.rows, c.channels, values_of(x)};
  const auto forward = dpunet::test::batch_norm_relu_forward_reference(map, layer, c.multiprocessors);
  const auto backward =
      dpunet::test::batch_norm_relu_backward_reference(map, values_of(dy), layer, forward, c.multiprocessors);

  // ATen in double: BatchNorm over the rows (BatchNorm1d's view of an NHWC map), then ReLU.
  const torch::Tensor xd = x.to(torch::kDouble).requires_grad_(true);
  const torch::Tensor wd = weight.to(torch::kDouble).requires_grad_(true);
  const torch::Tensor bd = bias.to(torch::kDouble).requires_grad_(true);
  torch::Tensor rm = running_mean.to(torch::kDouble), rv = running_var.to(torch::kDouble);
  const torch::Tensor y = torch::relu(
      torch::batch_norm(xd, wd, bd, rm, rv, /*training=*/true, layer.momentum, layer.eps, /*cudnn_enabled=*/false));
  y.backward(dy.to(torch::kDouble));
  const torch::Tensor mean = xd.detach().mean(0);
  const torch::Tensor invstd = 1.0 / torch::sqrt(xd.detach().var(0, /*unbiased=*/false) + layer.eps);

  const std::vector<int64_t> map_shape{c.rows, c.channels}, channel_shape{c.channels};
  check_close_but_relu(tensor_of(forward.y, map_shape), y.detach(), 1e-5, "output");
  // The mean's error matters as a share of the spread it is subtracted from.
  CHECK(((tensor_of(forward.save_mean, channel_shape) - mean).abs() * invstd).max().item<double>() < 1e-5);
  check_close_but_relu(tensor_of(forward.save_invstd, channel_shape), invstd, 1e-5, "batch invstd");
  check_close_but_relu(tensor_of(layer.running_mean, channel_shape), rm, 1e-6, "running mean");
  check_close_but_relu(tensor_of(layer.running_var, channel_shape), rv, 1e-5, "running variance");
  check_close_but_relu(tensor_of(backward.dx, map_shape), xd.grad(), 1e-4, "input gradient");
  check_close_but_relu(tensor_of(backward.dweight, channel_shape), wd.grad(), 1e-4, "weight gradient");
  check_close_but_relu(tensor_of(backward.dbias, channel_shape), bd.grad(), 1e-5, "bias gradient");
}

}  // namespace

TEST_CASE("the fused BatchNorm+ReLU kernels' arithmetic matches ATen's (host reference)", "[model]") {
  // A few rows (not two, the fewest fused_batch_norm_relu_applies passes to the kernels:
  // both normalise to +-1 whatever x is, which leaves nothing to check in the input
  // gradient) or many to a block's pass; widths that leave threads of a block idle (24,
  // 200: 256 is no multiple of their thread groups); the widest map (1024: two rows per
  // pass); blocks with no rows (17 rows of 1024 in 8 chunks of 3: the last two empty);
  // and maps where every thread of the apply passes takes several vectors (one
  // multiprocessor: a grid of at most 16 blocks, rounded up to keep threads on their
  // channels).
  const std::vector<Case> cases = {{3, 8, 1, 0},      {5, 16, 132, 0},   {17, 1024, 1, 0},  {37, 8, 1, 0},
                                   {1000, 24, 2, 0},  {777, 200, 3, 0},  {77, 1024, 2, 0},  {5000, 24, 1, 0},
                                   {6000, 40, 1, 50}, {4096, 64, 7, 50}, {3000, 136, 1, 0}, {2048, 1024, 132, 0}};
  for (const Case& c : cases) check_against_aten(c);
}

TEST_CASE("the fused BatchNorm+ReLU kernels' grids cover every row once and keep threads on their channels",
          "[model]") {
  using namespace dpunet::model::cuda;
  for (int64_t channels = kNormVector; channels <= 1024; channels += kNormVector) {
    for (int multiprocessors : {1, 7, 108, 132}) {
      for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{255}, int64_t{4097}, int64_t{572 * 572 * 2}}) {
        INFO("channels " << channels << ", multiprocessors " << multiprocessors << ", rows " << rows);
        const ReductionSplit s = reduction_split(rows, channels, multiprocessors);
        REQUIRE(s.groups * s.rows_per_pass <= kNormThreads);
        REQUIRE(s.rows_per_pass >= 1);
        REQUIRE(s.blocks >= 1);
        REQUIRE(s.blocks <= multiprocessors * kReductionBlocksPerSm);
        REQUIRE(s.chunk * s.blocks >= rows);  // every row in some block's chunk, chunks disjoint
        const int64_t vectors = rows * channels / kNormVector;
        const int blocks = apply_blocks(vectors, channels, multiprocessors);
        REQUIRE(blocks >= 1);
        // A thread's stride through the map is a whole number of rows: the same channels
        // at every step.
        REQUIRE((int64_t{blocks} * kNormThreads * kNormVector) % channels == 0);
      }
    }
  }
}

TEST_CASE("the float64 BatchNorm+ReLU reference equals autograd and follows the decisions it is given", "[model]") {
  torch::manual_seed(3);
  torch::nn::BatchNorm2d norm(16);
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    norm->weight.uniform_(0.5, 1.5);
    norm->bias.uniform_(-0.5, 0.5);
  }
  const torch::Tensor x = (torch::randn({4, 16, 5, 7}, torch::kDouble) * 2 + 50).requires_grad_(true);
  const torch::Tensor dy = torch::randn({4, 16, 5, 7}, torch::kDouble);
  const torch::Tensor y = torch::relu(norm->forward(x));
  y.backward(dy);
  const torch::Tensor passed = y.detach() > 0;
  const auto exact = dpunet::test::batch_norm_relu_exact(x, dy, norm->weight, norm->bias, norm->options.eps(), passed);
  CHECK(torch::equal(exact.pre_relu > 0, passed));
  CHECK(dpunet::test::relative_error(exact.dx, x.grad()) < 1e-12);
  CHECK(dpunet::test::relative_error(exact.dweight, norm->weight.grad()) < 1e-12);
  CHECK(dpunet::test::relative_error(exact.dbias, norm->bias.grad()) < 1e-12);
  // One decision the other way: channel 0's bias gradient moves by that value's dy.
  const torch::Tensor flipped = passed.clone();
  flipped[0][0][0][0] = !flipped[0][0][0][0].item<bool>();
  const auto other = dpunet::test::batch_norm_relu_exact(x, dy, norm->weight, norm->bias, norm->options.eps(), flipped);
  const double moved = (other.dbias[0] - exact.dbias[0]).item<double>();
  CHECK(std::abs(std::abs(moved) - std::abs(dy[0][0][0][0].item<double>())) < 1e-12);
  CHECK(torch::equal(other.dbias.narrow(0, 1, 15), exact.dbias.narrow(0, 1, 15)));
}
