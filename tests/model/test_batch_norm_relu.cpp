// Fused BatchNorm+ReLU against BatchNorm then ReLU: output, running statistics and
// gradients, alone and inside a U-Net with and without checkpointing; float32 gradients
// against float64's (ATen's float32 path is no exact reference). The fused kernels
// need a GPU ([gpu], skipped without one); the plain path is checked on the CPU, and the
// kernels' split of the work and formulas in test_batch_norm_relu_arithmetic.
#include <algorithm>

#include <torch/cuda.h>
#include <torch/torch.h>
#ifdef DPUNET_TORCH_CUDA
#include <ATen/cuda/Sleep.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif
#include "support/catch.h"

#include "common/recompute_tape.h"
#include "model/batch_norm_relu.h"
#include "model/own_kernels.h"
#include "model/unet.h"
#include "support/batch_norm_relu_exact.h"
#include "support/own_kernels.h"
#include "support/tensor_compare.h"
#include "support/unet_gpu_step.h"

using dpunet::RecomputeTape;
using dpunet::model::batch_norm_relu;
using dpunet::model::fused_batch_norm_relu_applies;
using dpunet::model::OutputUse;
using dpunet::test::check_close_but_relu;
using dpunet::test::own_kernels_runnable;

namespace {

torch::nn::BatchNorm2d make_norm(int64_t channels, const torch::Device& device) {
  torch::manual_seed(1);
  torch::nn::BatchNorm2d norm(channels);
  torch::NoGradGuard no_grad;
  norm->weight.uniform_(0.5, 1.5);
  norm->bias.uniform_(-0.5, 0.5);
  norm->running_mean.uniform_(-1, 1);
  norm->running_var.uniform_(0.5, 2);
  norm->to(device);
  return norm;
}

struct Outcome {
  torch::Tensor y, dx, dweight, dbias, running_mean, running_var, batches;
};

Outcome run(const torch::Tensor& input, const torch::Tensor& grad, bool fused) {
  auto norm = make_norm(input.size(1), input.device());
  const torch::Tensor x = input.detach().clone(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  REQUIRE(fused_batch_norm_relu_applies(x, *norm) == dpunet::model::own_kernels_run_on(x.device()));
  const torch::Tensor y = batch_norm_relu(x, *norm, fused);
  y.backward(grad);
  return {y.detach().to(torch::kFloat).cpu(), x.grad().to(torch::kFloat).cpu(),
          norm->weight.grad().cpu(),          norm->bias.grad().cpu(),
          norm->running_mean.cpu(),           norm->running_var.cpu(),
          norm->num_batches_tracked.cpu()};
}

}  // namespace

TEST_CASE("fused BatchNorm+ReLU matches BatchNorm then ReLU on a GPU", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  // Small maps, widths that leave threads idle (24, 40), and maps large enough that every
  // thread of the reductions and the apply passes takes several rows.
  const std::vector<std::vector<int64_t>> shapes = {{4, 64, 33, 17}, {2, 128, 8, 8},     {3, 1024, 5, 7},
                                                    {1, 8, 1, 3},    {16, 24, 128, 128}, {32, 40, 64, 64}};
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    const double tolerance = type == torch::kFloat ? 1e-4 : 2e-2;
    for (const auto& shape : shapes) {
      for (double offset : {0.0, 50.0}) {  // a mean far from zero must not cancel the variance
        torch::manual_seed(7);
        const torch::Tensor input = (torch::randn(shape) * 2 + offset).to(device, type);
        const torch::Tensor grad = torch::randn(shape).to(device, type).contiguous(at::MemoryFormat::ChannelsLast);
        INFO("type " << type << " shape " << torch::IntArrayRef(shape) << " offset " << offset);
        const Outcome fused = run(input, grad, true);
        const Outcome plain = run(input, grad, false);
        check_close_but_relu(fused.y, plain.y, tolerance, "output");
        if (type == torch::kFloat) {
          // Against float64 with the kernels' own ReLU decisions, not against ATen's
          // float32 path: both round a few values near zero to the other side (on an
          // H200, 3 and 6 of the 6.3M values of the [16, 24, 128, 128] map at offset 50),
          // and each such value moves its channel's gradient sums by a whole dy.
          const auto norm = make_norm(shape[1], device);
          const auto exact = dpunet::test::batch_norm_relu_exact(input, grad, norm->weight, norm->bias,
                                                                 norm->options.eps(), fused.y > 0);
          // The decisions themselves: float64's but for values within rounding of zero.
          const int64_t flips = ((exact.pre_relu > 0) != (fused.y > 0)).sum().item<int64_t>();
          CHECK(flips <= std::max<int64_t>(1, input.numel() / 100000));
          check_close_but_relu(fused.dx, exact.dx, tolerance, "input gradient");
          check_close_but_relu(fused.dweight, exact.dweight, tolerance, "weight gradient");
          check_close_but_relu(fused.dbias, exact.dbias, tolerance, "bias gradient");
        } else {
          check_close_but_relu(fused.dx, plain.dx, tolerance, "input gradient");
          check_close_but_relu(fused.dweight, plain.dweight, tolerance, "weight gradient");
          check_close_but_relu(fused.dbias, plain.dbias, tolerance, "bias gradient");
        }
        check_close_but_relu(fused.running_mean, plain.running_mean, 1e-4, "running mean");
        check_close_but_relu(fused.running_var, plain.running_var, 1e-3, "running variance");
        CHECK(torch::equal(fused.batches, plain.batches));
      }
    }
  }
}

TEST_CASE("fused BatchNorm+ReLU recomputed in a checkpointed block reuses the first pass's statistics", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  torch::manual_seed(5);
  for (auto type : {torch::kFloat, torch::kBFloat16}) {
    const torch::Tensor x =
        (torch::randn({4, 64, 19, 23}) * 3 + 2).to(device, type).contiguous(at::MemoryFormat::ChannelsLast);
    auto norm = make_norm(64, device);
    RecomputeTape tape;
    torch::Tensor first;
    {
      RecomputeTape::Scope recording(tape, /*replay=*/false);
      torch::NoGradGuard no_grad;  // as the checkpoint's first forward runs
      first = batch_norm_relu(x, *norm);
    }
    REQUIRE(tape.size() == 1);
    const torch::Tensor running_mean = norm->running_mean.clone(), running_var = norm->running_var.clone();
    torch::Tensor again;
    {
      RecomputeTape::Scope replaying(tape, /*replay=*/true);
      again = batch_norm_relu(x, *norm);
    }
    INFO("type " << type);
    // The normalise pass alone, with the recorded statistics: the same bits, and the
    // running statistics are not updated a second time.
    CHECK(torch::equal(again, first));
    CHECK(torch::equal(norm->running_mean, running_mean));
    CHECK(torch::equal(norm->running_var, running_var));

    // Asked for a gradient only (a checkpointed block's output being recomputed), the
    // recomputation skips the normalise pass; backward through the unwritten map gives
    // the same bits as through the written one.
    const torch::Tensor dy = torch::randn_like(first);
    auto replayed_gradients = [&](OutputUse use) {
      const torch::Tensor input = x.detach().requires_grad_(true);
      norm->zero_grad();
      torch::Tensor y;
      {
        RecomputeTape::Scope replaying(tape, /*replay=*/true);
        y = batch_norm_relu(input, *norm, /*allow_fused=*/true, /*statistics=*/nullptr, use);
      }
      y.backward(dy);
      return std::vector<torch::Tensor>{y.detach(), input.grad(), norm->weight.grad().clone(),
                                        norm->bias.grad().clone()};
    };
    const auto written = replayed_gradients(OutputUse::kRead);
    const auto gradient_only = replayed_gradients(OutputUse::kGradientOnly);
    CHECK(torch::equal(written[0], first));
    for (size_t i = 1; i < written.size(); ++i) CHECK(torch::equal(gradient_only[i], written[i]));
    CHECK(torch::equal(norm->running_mean, running_mean));
  }
}

TEST_CASE("a U-Net step with fused BatchNorm+ReLU matches the plain one on a GPU, checkpointed too", "[gpu]") {
  if (!own_kernels_runnable()) return;
  for (bool checkpointed : {false, true}) {
    // Fused, then BatchNorm and ReLU in float32 and in float64.
    std::vector<dpunet::test::UnetGpuStep> steps;
    for (int variant = 0; variant < 3; ++variant) {
      dpunet::model::UnetOptions o;
      o.n_classes = 3;
      o.base_channels = 16;
      o.depth = 2;
      o.fuse_norm_relu = variant == 0;
      // Checkpointed as training checkpoints: BatchNorm+ReLU outputs recomputed too.
      steps.push_back(dpunet::test::unet_gpu_step(o, 64, checkpointed, /*recompute_norm=*/checkpointed,
                                                  variant == 2 ? torch::kDouble : torch::kFloat));
    }
    INFO("checkpointed " << checkpointed);
    // Every BatchNorm of the model took the fused kernels.
    CHECK(steps[0].usage.norm_relu.ours > 0);
    CHECK(steps[0].usage.norm_relu.aten == 0);
    const auto &fused = steps[0], &plain = steps[1], &exact = steps[2];
    CHECK(dpunet::test::relative_error(fused.output, exact.output) < 1e-5);
    // Against float64, not ATen's float32 path: on an H200 the fused step's gradients were
    // within 3e-6 of float64's and ATen's float32 ones up to 1.8e-2 away (its output within
    // 1e-6), so the two float32 paths differ by ATen's error.
    for (size_t i = 0; i < fused.grads.size(); ++i) {
      INFO("parameter gradient " << i << " of shape " << exact.grads[i].sizes() << ": ATen's float32 error "
                                 << dpunet::test::relative_error(plain.grads[i], exact.grads[i]));
      CHECK(dpunet::test::relative_error(fused.grads[i], exact.grads[i]) < 1e-4);
    }
    for (size_t i = 0; i < fused.buffers.size(); ++i) {
      if (fused.buffers[i].scalar_type() == torch::kLong) {
        CHECK(torch::equal(fused.buffers[i], plain.buffers[i]));  // num_batches_tracked
      } else {
        check_close_but_relu(fused.buffers[i], plain.buffers[i], 1e-4, "running statistics");
      }
    }
  }
}

TEST_CASE("fused BatchNorm+ReLU leaves maps its kernels cannot take to ATen, with ATen's results", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  auto nhwc = [&](std::vector<int64_t> shape) {
    return torch::randn(shape).to(device).contiguous(at::MemoryFormat::ChannelsLast);
  };
  auto declined = [&](const torch::Tensor& x, torch::nn::BatchNorm2d norm, const char* why) {
    INFO(why);
    CHECK_FALSE(fused_batch_norm_relu_applies(x, *norm));
    // Fallen back: the same bits as BatchNorm then ReLU from the same state.
    auto twin = torch::nn::BatchNorm2d(norm->options);
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < norm->parameters().size(); ++i) twin->parameters()[i].copy_(norm->parameters()[i]);
      for (size_t i = 0; i < norm->buffers().size(); ++i) twin->buffers()[i].copy_(norm->buffers()[i]);
    }
    twin->to(device);
    twin->train(norm->is_training());
    CHECK(torch::equal(batch_norm_relu(x, *norm), torch::relu(twin->forward(x))));
    CHECK(torch::equal(norm->running_var, twin->running_var));
  };
  REQUIRE(fused_batch_norm_relu_applies(nhwc({2, 16, 6, 6}), *make_norm(16, device)));
  declined(torch::randn({2, 16, 6, 6}).to(device), make_norm(16, device), "NCHW map");
  declined(nhwc({2, 12, 6, 6}), make_norm(12, device), "width not a multiple of 8");
  declined(nhwc({1, 1032, 3, 3}), make_norm(1032, device), "wider than the kernels' 1024");
  auto eval = make_norm(16, device);
  eval->eval();
  declined(nhwc({2, 16, 6, 6}), eval, "eval mode");
  torch::nn::BatchNorm2d cumulative(torch::nn::BatchNorm2dOptions(16).momentum(c10::nullopt));
  cumulative->to(device);
  declined(nhwc({2, 16, 6, 6}), cumulative, "cumulative average (momentum none)");
}

#ifdef DPUNET_TORCH_CUDA
TEST_CASE("fused BatchNorm+ReLU runs on the caller's current stream", "[gpu]") {
  if (!own_kernels_runnable()) return;
  const torch::Device device(torch::kCUDA);
  torch::manual_seed(9);
  const torch::Tensor input = torch::randn({8, 64, 40, 40}).to(device, torch::kBFloat16);
  const torch::Tensor grad = torch::randn({8, 64, 40, 40}).to(device, torch::kBFloat16);
  const Outcome on_default = run(input, grad, true);
  Outcome on_side;
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, 0);
  {
    torch::cuda::synchronize();  // the inputs, made on the default stream, are ready
    const c10::cuda::CUDAStreamGuard guard(side);
    // The side stream busy first: kernels launched on another stream would read run()'s
    // copies of the inputs before they are made, and differ.
    at::cuda::sleep(int64_t{1} << 26);
    on_side = run(input, grad, true);
  }
  // run() copies its results to the host, which waits for the side stream's work.
  CHECK(torch::equal(on_side.y, on_default.y));
  CHECK(torch::equal(on_side.dx, on_default.dx));
  CHECK(torch::equal(on_side.dweight, on_default.dweight));
  CHECK(torch::equal(on_side.running_var, on_default.running_var));
}
#endif

TEST_CASE("batch_norm_relu off the GPU is BatchNorm then ReLU", "[model]") {
  torch::manual_seed(5);
  const torch::Tensor input = torch::randn({2, 16, 5, 6});
  const torch::Tensor grad = torch::randn({2, 16, 5, 6});
  const Outcome fused = run(input, grad, true);  // falls back: no GPU here, or a CPU tensor
  auto norm = make_norm(16, torch::kCPU);
  const torch::Tensor x = input.clone(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  torch::Tensor y = norm->forward(x);
  y = torch::relu(y);
  y.backward(grad);
  CHECK(torch::equal(fused.y, y.detach()));
  CHECK(torch::equal(fused.dx, x.grad()));
  CHECK(torch::equal(fused.running_var, norm->running_var));
  norm->eval();
  CHECK_FALSE(fused_batch_norm_relu_applies(x, *norm));
}

TEST_CASE("batch_norm_relu on ATen's path keeps a checkpointed block's tape in step", "[model]") {
  const torch::Tensor x = torch::randn({2, 8, 4, 4});
  auto norm = make_norm(8, torch::kCPU);
  RecomputeTape tape;
  {
    RecomputeTape::Scope recording(tape, /*replay=*/false);
    batch_norm_relu(x, *norm);
    batch_norm_relu(x, *norm);
  }
  // One entry per call, empty: ATen computes its statistics itself.
  REQUIRE(tape.size() == 2);
  RecomputeTape::Scope replaying(tape, /*replay=*/true);
  REQUIRE(tape.replay_next().empty());
  REQUIRE(tape.replay_next().empty());
}

TEST_CASE("batch_norm_relu on ATen's path writes its output even when asked for a gradient only", "[model]") {
  // ATen's ReLU backward reads the output, so it is computed whatever the caller says.
  const torch::Tensor x = torch::randn({2, 8, 4, 4});
  auto norm = make_norm(8, torch::kCPU);
  const torch::Tensor read = batch_norm_relu(x, *norm);
  RecomputeTape tape;
  {
    RecomputeTape::Scope recording(tape, /*replay=*/false);
    batch_norm_relu(x, *norm);
  }
  RecomputeTape::Scope replaying(tape, /*replay=*/true);
  const torch::Tensor gradient_only =
      batch_norm_relu(x, *norm, /*allow_fused=*/true, /*statistics=*/nullptr, OutputUse::kGradientOnly);
  CHECK(torch::equal(gradient_only, read));
}
