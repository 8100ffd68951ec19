// norm_relu_conv against conv.forward(batch_norm_relu(...)): the same output, gradients
// and running statistics bit for bit, with the convolution's input recomputed in backward
// instead of kept. ATen's path on the CPU; the fused kernels under bf16 autocast on a GPU
// ([gpu], skipped without one).
#include <torch/cuda.h>
#include <torch/torch.h>
#ifdef DPUNET_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include "support/catch.h"
#include "support/cpu_allocations.h"

#include "common/autocast_scope.h"
#include "model/batch_norm_relu.h"
#include "model/norm_relu_conv.h"
#include "support/own_kernels.h"
#include "support/unet_gpu_step.h"

using dpunet::model::batch_norm_relu;
using dpunet::model::norm_relu_conv;

namespace {

struct Layers {
  torch::nn::BatchNorm2d norm{nullptr};
  torch::nn::Conv2d conv{nullptr};
};

// Float layers, or double ones for a double input.
Layers make_layers(int64_t in, int64_t out, bool bias, const torch::Tensor& input) {
  torch::manual_seed(3);
  Layers l{torch::nn::BatchNorm2d(in), torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(bias))};
  torch::NoGradGuard no_grad;
  l.norm->weight.uniform_(0.5, 1.5);
  l.norm->bias.uniform_(-0.5, 0.5);
  const auto type = input.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  l.norm->to(input.device(), type);
  l.conv->to(input.device(), type);
  // NHWC weights with NHWC maps, as training lays them out.
  if (input.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    l.conv->weight.set_data(l.conv->weight.contiguous(at::MemoryFormat::ChannelsLast));
  }
  return l;
}

struct Outcome {
  std::vector<torch::Tensor> values;  // output, then every gradient and buffer, on the CPU
};

Outcome step(const torch::Tensor& input, const torch::Tensor& grad, bool recompute, bool bias, bool autocast) {
  Layers l = make_layers(input.size(1), grad.size(1), bias, input);
  const torch::Tensor x = input.detach().clone().requires_grad_(true);
  torch::Tensor z;
  {
    const dpunet::AutocastScope scope(autocast, torch::kBFloat16);
    z = recompute ? norm_relu_conv(x, *l.norm, *l.conv) : l.conv->forward(batch_norm_relu(x, *l.norm));
  }
  // The recomputing path really ran (and not the plain composition it falls back to).
  CHECK((z.grad_fn()->name().find("NormReluConvFunction") != std::string::npos) == recompute);
  z.backward(grad.to(z.scalar_type()));
  Outcome o;
  o.values = {z.detach(), x.grad(), l.norm->weight.grad(), l.norm->bias.grad(), l.conv->weight.grad()};
  if (bias) o.values.push_back(l.conv->bias.grad());
  for (const auto& b : l.norm->buffers()) o.values.push_back(b);
  for (auto& v : o.values) v = v.cpu();
  return o;
}

void require_identical(const Outcome& recomputed, const Outcome& kept) {
  REQUIRE(recomputed.values.size() == kept.values.size());
  for (size_t i = 0; i < kept.values.size(); ++i) {
    INFO("value " << i << " (output, dx, norm dweight, norm dbias, conv dweight, [conv dbias], buffers)");
    CHECK(recomputed.values[i].scalar_type() == kept.values[i].scalar_type());
    CHECK(torch::equal(recomputed.values[i], kept.values[i]));
  }
}

}  // namespace

TEST_CASE("norm_relu_conv equals the convolution of batch_norm_relu bit for bit on the CPU", "[model]") {
  for (auto type : {torch::kFloat, torch::kDouble}) {
    for (bool bias : {false, true}) {
      for (bool channels_last : {false, true}) {
        INFO(c10::toString(type) << ", bias " << bias << ", channels_last " << channels_last);
        torch::manual_seed(9);
        torch::Tensor x = torch::randn({2, 8, 9, 7}).to(type);
        if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
        const torch::Tensor grad = torch::randn({2, 4, 9, 7}).to(type);
        require_identical(step(x, grad, true, bias, false), step(x, grad, false, bias, false));
      }
    }
  }
}

TEST_CASE("norm_relu_conv in eval mode or without grad is the plain composition", "[model]") {
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({1, 8, 6, 6});
  Layers a = make_layers(8, 4, false, x);
  Layers b = make_layers(8, 4, false, x);
  {
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(norm_relu_conv(x, *a.norm, *a.conv), b.conv->forward(batch_norm_relu(x, *b.norm))));
    CHECK(torch::equal(a.norm->running_mean, b.norm->running_mean));
  }
  a.norm->eval();
  b.norm->eval();
  const torch::Tensor z = norm_relu_conv(x.requires_grad_(true), *a.norm, *a.conv);
  CHECK(torch::equal(z, b.conv->forward(b.norm->forward(x).relu())));
  CHECK(torch::equal(a.norm->num_batches_tracked, b.norm->num_batches_tracked));
}

TEST_CASE("norm_relu_conv's backward holds no more maps than the plain composition's on the CPU", "[model]") {
  // ATen's BatchNorm then ReLU: the recomputed map and its gradient must be let go of as
  // the nested backward uses them up, not held through the BatchNorm's backward.
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({2, 32, 64, 64});
  // One output channel: the convolution's own backward (its output gradient, oneDNN's
  // reordered copies) stays small, and the BatchNorm+ReLU backward's maps make the peak.
  const torch::Tensor loss_weights = torch::randn({2, 1, 64, 64});
  auto peak_through_backward = [&](bool recompute) {
    Layers l = make_layers(32, 1, false, x);
    const torch::Tensor in = x.detach().clone().requires_grad_(true);
    // From before forward: the plain composition's map, kept from forward, counts too.
    dpunet::test::CpuAllocations counted;
    const torch::Tensor z =
        recompute ? norm_relu_conv(in, *l.norm, *l.conv) : l.conv->forward(batch_norm_relu(in, *l.norm));
    const torch::Tensor loss = (z * loss_weights).sum();
    counted.reset_peak();
    loss.backward();
    return counted.peak();
  };
  const int64_t map_bytes = x.numel() * x.element_size();
  peak_through_backward(false);  // one-off allocations (thread pools' buffers) out of the way
  const int64_t plain = peak_through_backward(false), recomputed = peak_through_backward(true);
  INFO("peak in backward above the allocation before forward: plain " << plain << " bytes, recomputing " << recomputed
                                                                      << ", one map " << map_bytes);
  CHECK(plain >= 2 * map_bytes);  // the counter sees the maps at all
  CHECK(recomputed < plain + map_bytes / 2);
}

TEST_CASE("norm_relu_conv equals the convolution of fused batch_norm_relu bit for bit under bf16 autocast", "[gpu]") {
  if (!dpunet::test::own_kernels_runnable()) return;
  auto& context = at::globalContext();
  const bool deterministic = context.deterministicCuDNN();
  context.setDeterministicCuDNN(true);
  torch::manual_seed(9);
  // A bf16 NHWC map, as a convolution under autocast hands it to the BatchNorm.
  const torch::Tensor x =
      torch::randn({2, 16, 24, 20}).to(torch::kCUDA, torch::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
  const torch::Tensor grad = torch::randn({2, 8, 24, 20}).to(torch::kCUDA);
  require_identical(step(x, grad, true, false, true), step(x, grad, false, false, true));
  context.setDeterministicCuDNN(deterministic);
}

TEST_CASE("a U-Net step recomputing BatchNorm+ReLU outputs gives the same bits on a GPU, checkpointed too", "[gpu]") {
  if (!dpunet::test::own_kernels_runnable()) return;
  dpunet::model::UnetOptions o;
  o.n_classes = 3;
  o.base_channels = 16;
  o.depth = 2;
  // Fused: the kernels' normalise pass again; not fused: ATen's BatchNorm recomputed
  // without running statistics (batch_norm_relu_replay), which must give the same bits.
  // Checkpointed with the balanced policy (at depth 2: inc alone), so that recomputed
  // blocks, which keep the map, run beside blocks that recompute it.
  for (bool fused : {true, false}) {
    o.fuse_norm_relu = fused;
    for (bool checkpointed : {false, true}) {
      INFO("fused " << fused << ", checkpointed " << checkpointed);
      const auto policy = dpunet::model::CheckpointPolicy::kBalanced;
      const auto recomputed =
          dpunet::test::unet_gpu_step(o, 64, checkpointed, /*recompute_norm=*/true, torch::kFloat, policy);
      const auto kept =
          dpunet::test::unet_gpu_step(o, 64, checkpointed, /*recompute_norm=*/false, torch::kFloat, policy);
      if (fused) {
        CHECK(recomputed.usage.norm_relu.aten == 0);  // the fused kernels, in every layer
      } else {
        CHECK(recomputed.usage.norm_relu.ours == 0);
      }
      for (size_t i = 0; i < kept.grads.size(); ++i) CHECK(torch::equal(recomputed.grads[i], kept.grads[i]));
      for (size_t i = 0; i < kept.buffers.size(); ++i) CHECK(torch::equal(recomputed.buffers[i], kept.buffers[i]));
    }
  }
}

#ifdef DPUNET_TORCH_CUDA
namespace {

// The caching allocator's bytes on device 0 (current and peak), once queued work is done.
auto device_allocated() {
  torch::cuda::synchronize();
  return c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0];
}

// A map as training lays it out on a GPU: bf16, NHWC.
torch::Tensor gpu_map() {
  return torch::randn({4, 32, 64, 64}).to(torch::kCUDA, torch::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
}

// norm_relu_conv, or the plain composition it stands for, under bf16 autocast.
torch::Tensor forward_bf16(Layers& l, const torch::Tensor& in, bool recompute) {
  const dpunet::AutocastScope scope(true, torch::kBFloat16);
  return recompute ? norm_relu_conv(in, *l.norm, *l.conv) : l.conv->forward(batch_norm_relu(in, *l.norm));
}

}  // namespace

TEST_CASE("norm_relu_conv keeps one map less than the plain composition until backward on a GPU", "[gpu]") {
  if (!dpunet::test::own_kernels_runnable()) return;
  const torch::Tensor x = gpu_map();
  auto kept_after_forward = [&](bool recompute) {
    Layers l = make_layers(32, 32, false, x);
    const torch::Tensor in = x.detach().clone().requires_grad_(true);
    const auto before = device_allocated().current;
    const torch::Tensor z = forward_bf16(l, in, recompute);
    const auto after = device_allocated().current;
    z.sum().backward();
    return after - before;
  };
  const int64_t map_bytes = x.numel() * x.element_size();
  const int64_t plain = kept_after_forward(false), recomputed = kept_after_forward(true);
  INFO("held after forward: plain " << plain << " bytes, recomputing " << recomputed << ", one map " << map_bytes);
  CHECK(plain - recomputed >= map_bytes);
}

TEST_CASE("norm_relu_conv's backward peaks no higher than the plain composition's on a GPU", "[gpu]") {
  // The recomputed map is alive in backward where the plain composition kept it from
  // forward; the convolution's output gradient, used up once the convolution's backward
  // has run, must not be held through the BatchNorm+ReLU backward on top of it (the peak of
  // a checkpointed U-Net's step lies there).
  if (!dpunet::test::own_kernels_runnable()) return;
  const torch::Tensor x = gpu_map();
  // Weights of the loss, NHWC like the output: the output's gradient, these weights, is then
  // an NHWC map owned by the engine alone, which cuDNN's backward takes without a copy.
  const torch::Tensor loss_weights = torch::randn_like(x);
  auto peak_through_backward = [&](bool recompute) {
    Layers l = make_layers(32, 32, false, x);
    const torch::Tensor in = x.detach().clone().requires_grad_(true);
    const auto start = device_allocated().current;
    const torch::Tensor loss = (forward_bf16(l, in, recompute) * loss_weights).sum();
    device_allocated();  // forward done before the peak is reset
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
    loss.backward();
    return device_allocated().peak - start;
  };
  const int64_t map_bytes = x.numel() * x.element_size();
  peak_through_backward(false);  // cuDNN's first choices of algorithm out of the way
  const int64_t plain = peak_through_backward(false), recomputed = peak_through_backward(true);
  INFO("peak in backward above the allocation before forward: plain " << plain << " bytes, recomputing " << recomputed
                                                                      << ", one map " << map_bytes);
  CHECK(recomputed < plain + map_bytes / 2);
}
#endif
