// dpunet::model::checkpoint on arbitrary modules: gradients equal the plain run, RNG is
// replayed for dropout, buffers are updated once, hooks fire, and no-grad is a plain call.
#include "support/catch.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "model/activation_checkpoint.h"
#include "support/cpu_allocations.h"

using dpunet::model::checkpoint;

namespace {

torch::nn::Sequential make_block() {
  return torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::BatchNorm1d(16), torch::nn::ReLU(),
                               torch::nn::Dropout(0.5), torch::nn::Linear(16, 4));
}

// Runs block on x (checkpointed or not) from the same RNG seed; returns output, input grad
// and parameter grads.
struct Result {
  torch::Tensor output, input_grad;
  std::vector<torch::Tensor> param_grads;
};

Result run(torch::nn::Sequential& block, const torch::Tensor& input, bool checkpointed) {
  block->zero_grad();
  auto x = input.clone().requires_grad_(true);
  torch::manual_seed(7);
  auto y = checkpointed ? checkpoint(block, x) : block->forward(x);
  // Consume RNG between forward and backward: the recomputation must not see this.
  (void)torch::rand({100});
  (y * torch::arange(y.numel()).view(y.sizes())).sum().backward();
  Result r{y.detach(), x.grad().clone(), {}};
  for (auto& p : block->parameters()) r.param_grads.push_back(p.grad().clone());
  return r;
}

}  // namespace

TEST_CASE("checkpoint gives the same outputs and gradients as the plain block, with dropout", "[model][checkpoint]") {
  torch::manual_seed(0);
  auto block = make_block();
  const auto input = torch::randn({6, 8});
  auto snapshot = [&] {
    std::vector<torch::Tensor> b;
    for (auto& t : block->buffers()) b.push_back(t.clone());
    return b;
  };
  const auto buffers_before = snapshot();
  const Result plain = run(block, input, false);
  const auto buffers_after_plain = snapshot();
  // Rewind the buffers so both runs start from the same state.
  {
    torch::NoGradGuard no_grad;
    auto bufs = block->buffers();
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i].copy_(buffers_before[i]);
  }
  const Result ckpt = run(block, input, true);
  const auto buffers_after_ckpt = snapshot();

  CHECK(torch::allclose(plain.output, ckpt.output, 1e-5, 1e-7));
  CHECK(torch::allclose(plain.input_grad, ckpt.input_grad, 1e-5, 1e-7));
  REQUIRE(plain.param_grads.size() == ckpt.param_grads.size());
  for (size_t i = 0; i < plain.param_grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(plain.param_grads[i], ckpt.param_grads[i], 1e-5, 1e-7));
  }
  // BatchNorm running stats and num_batches_tracked: one update, not two.
  for (size_t i = 0; i < buffers_after_plain.size(); ++i) {
    INFO("buffer " << i);
    CHECK(torch::equal(buffers_after_plain[i], buffers_after_ckpt[i]));
  }
}

TEST_CASE("checkpoint keeps no activations of the block alive after forward", "[model][checkpoint]") {
  auto lin = torch::nn::Linear(4, 4);
  auto x = torch::randn({2, 4}, torch::requires_grad());
  auto y = checkpoint(lin, x);
  REQUIRE(y.grad_fn());
  // A plain block's graph would start at its last op (AddmmBackward) and keep the block's
  // saved tensors; the checkpointed one is a single node leading straight to leaves.
  CHECK(y.grad_fn()->name().find("CheckpointFunction") != std::string::npos);
  CHECK(y.grad_fn()->num_inputs() == 1);
  for (const auto& edge : y.grad_fn()->next_edges()) {
    REQUIRE(edge.function);
    CHECK(edge.function->name().find("AccumulateGrad") != std::string::npos);
  }
  // And in bytes: three wide layers keep two inner maps (the ReLUs' results, which the
  // next layers saved) besides their output until backward; checkpointed, the output only.
  torch::nn::Sequential wide(torch::nn::Linear(256, 256), torch::nn::ReLU(), torch::nn::Linear(256, 256),
                             torch::nn::ReLU(), torch::nn::Linear(256, 256));
  const auto input = torch::randn({1024, 256}, torch::requires_grad());
  const double map_bytes = 1024.0 * 256 * sizeof(float);
  auto maps_alive_after_forward = [&](bool checkpointed) {
    const dpunet::test::CpuAllocations allocations;
    const torch::Tensor out = checkpointed ? checkpoint(wide, input) : wide->forward(input);
    return static_cast<double>(allocations.current()) / map_bytes;
  };
  const double plain = maps_alive_after_forward(false), checkpointed = maps_alive_after_forward(true);
  INFO("maps alive after forward: plain " << plain << ", checkpointed " << checkpointed);
  CHECK(plain >= 2.9);
  CHECK(checkpointed < 1.1);
}

TEST_CASE("checkpoint fires each parameter's gradient hook once per backward", "[model][checkpoint]") {
  auto block = make_block();
  std::vector<int> fired(block->parameters().size(), 0);
  auto params = block->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].register_hook([&fired, i](const torch::Tensor& g) {
      ++fired[i];
      return g;
    });
  }
  auto x = torch::randn({4, 8});
  checkpoint(block, x).sum().backward();
  checkpoint(block, x).sum().backward();
  for (int count : fired) CHECK(count == 2);
}

TEST_CASE("checkpoint accumulates into existing gradients across micro-batches", "[model][checkpoint]") {
  torch::manual_seed(3);
  auto lin = torch::nn::Linear(5, 3);
  auto x = torch::randn({4, 5});
  lin->forward(x).pow(2).sum().backward();
  const auto once = lin->weight.grad().clone();
  checkpoint(lin, x).pow(2).sum().backward();
  CHECK(torch::allclose(lin->weight.grad(), 2 * once, 1e-5, 1e-6));
}

TEST_CASE("checkpoint refuses a double backward instead of returning a wrong one", "[model][checkpoint]") {
  torch::manual_seed(3);
  auto lin = torch::nn::Linear(5, 3);
  auto x = torch::randn({4, 5}).requires_grad_(true);
  const torch::Tensor y = checkpoint(lin, x).pow(2).sum();
  CHECK_THROWS_WITH(torch::autograd::grad({y}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true),
                    HasSubstr("no double backward") && HasSubstr("model.checkpointing"));
}

TEST_CASE("checkpoint is a plain call without grad mode", "[model][checkpoint]") {
  auto lin = torch::nn::Linear(4, 2);
  torch::NoGradGuard no_grad;
  auto y = checkpoint(lin, torch::randn({3, 4}));
  CHECK_FALSE(y.requires_grad());
  CHECK_FALSE(y.grad_fn());
}

TEST_CASE("checkpoint passes several inputs and gradients to each", "[model][checkpoint]") {
  auto lin = torch::nn::Linear(3, 3);
  auto a = torch::randn({2, 3}, torch::requires_grad());
  auto b = torch::randn({2, 3}, torch::requires_grad());
  auto run = [&lin](const std::vector<torch::Tensor>& in) {
    return std::vector<torch::Tensor>{lin->forward(in[0]) * in[1], in[1].sum()};
  };
  auto outs = checkpoint(*lin, run, {a, b});
  REQUIRE(outs.size() == 2);
  (outs[0].sum() + 3 * outs[1]).backward();
  // d/db of sum(lin(a) * b) + 3 sum(b) = lin(a) + 3
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(b.grad(), lin->forward(a) + 3));
  CHECK(a.grad().defined());
}

namespace {

// CPU autocast to bf16 for a stretch of code, entered and left as torch.autocast does.
class CpuAutocast {
 public:
  CpuAutocast() {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CpuAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCPU, false);
  }
};

}  // namespace

TEST_CASE("checkpoint's recomputation under autocast leaves no cast weights for the next step", "[model][checkpoint]") {
  // Autocast caches the bf16 copy of each weight until the outermost autocast region
  // ends. A recomputation in backward that cached copies would hand the next step's
  // forward the weights from before the optimizer's update.
  torch::manual_seed(2);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
  const torch::Tensor x = torch::randn({1, 3, 8, 8});
  torch::Tensor loss;
  {
    const CpuAutocast autocast;
    loss = checkpoint(conv, x.requires_grad_(true)).to(torch::kFloat).sum();
  }
  loss.backward();  // outside autocast, as training runs it; recomputes the convolution
  {
    torch::NoGradGuard no_grad;
    conv->weight.add_(1.0);  // the optimizer's step
  }
  const CpuAutocast autocast;
  const torch::Tensor expected =
      at::conv2d(x.to(torch::kBFloat16), conv->weight.to(torch::kBFloat16), conv->bias.to(torch::kBFloat16), 1, 1);
  CHECK(torch::equal(conv->forward(x), expected));
}

TEST_CASE("a recomputation that fails puts the RNG and the block's buffers back", "[model][checkpoint]") {
  // As an out-of-memory error in backward would, which the largest-batch search recovers
  // from and goes on training with.
  auto norm = torch::nn::BatchNorm1d(4);
  int calls = 0;
  auto run = [&norm, &calls](const std::vector<torch::Tensor>& in) {
    // Updates the running statistics and draws from the RNG before failing.
    auto y = norm->forward(in[0]) + torch::rand_like(in[0]);
    if (++calls == 2) throw std::runtime_error("out of memory (simulated)");
    return std::vector<torch::Tensor>{y};
  };
  const auto x = torch::randn({6, 4}, torch::requires_grad());
  const auto out = checkpoint(*norm, run, {x});
  const auto mean = norm->running_mean.clone(), count = norm->num_batches_tracked.clone();
  torch::manual_seed(11);
  CHECK_THROWS_WITH(out[0].sum().backward(), HasSubstr("simulated"));
  CHECK(calls == 2);
  CHECK(torch::equal(norm->running_mean, mean));
  CHECK(torch::equal(norm->num_batches_tracked, count));
  const auto next = torch::rand({3});
  torch::manual_seed(11);
  CHECK(torch::equal(next, torch::rand({3})));  // the draws go on from where they were
}
