// Unet::use_checkpointing and per-block checkpointing: same gradients and BatchNorm
// statistics as the plain model, for every layout; and min_memory's split skip
// convolutions (model/split_input_conv.h), the same to rounding with no concatenation kept.
#include "support/catch.h"

#include <torch/torch.h>

#include <set>

#include "common/error.h"
#include "model/kernel_usage.h"
#include "model/unet.h"
#include "model/unet_parts.h"
#include "support/tensor_compare.h"
#include "support/unet_gpu_step.h"

using dpunet::model::CheckpointPolicy;
using dpunet::model::KernelUsage;
using dpunet::model::OutputUse;
using dpunet::model::Padding;
using dpunet::model::Unet;
using dpunet::model::UnetOptions;

namespace {

struct StepResult {
  torch::Tensor loss;
  std::vector<torch::Tensor> grads;    // per parameter
  std::vector<torch::Tensor> buffers;  // after the step
};

// One training step of a freshly seeded Unet; `configure` sets checkpointing. NHWC
// (`format` ChannelsLast) lays out the input and the convolutions' weights as training
// does on a GPU, so that the maps are NHWC throughout.
template <typename Configure>
StepResult train_step(const UnetOptions& options, int64_t size, Configure configure,
                      at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  torch::manual_seed(42);
  Unet net(options);
  net->train();
  configure(net);
  if (format != at::MemoryFormat::Contiguous) {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(format));
    }
  }
  const auto x = torch::randn({2, options.n_channels, size, size}).contiguous(format);
  auto y = net->forward(x);
  CHECK(y.is_contiguous(format));  // the layout held to the end
  const auto target = torch::randint(options.n_classes, {2, y.size(2), y.size(3)}, torch::kLong);
  auto loss = torch::nn::functional::cross_entropy(y, target);
  loss.backward();
  StepResult r{loss.detach(), {}, {}};
  for (const auto& p : net->parameters()) r.grads.push_back(p.grad().clone());
  for (const auto& b : net->buffers()) r.buffers.push_back(b.clone());
  return r;
}

// How gradients are compared: each element within 1e-5 of its own value (and 1e-7), or
// within 1e-5 of its tensor's largest magnitude, for a change that reassociates sums (the
// split skip convolutions), whose rounding over many pixels follows the whole tensor's scale.
enum class Gradients { kPerElement, kToScale };

void require_same(const StepResult& a, const StepResult& b, Gradients measure = Gradients::kPerElement) {
  CHECK(torch::allclose(a.loss, b.loss, 1e-6, 0));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO("parameter " << i);
    if (measure == Gradients::kToScale) {
      CHECK(dpunet::test::within_scale(b.grads[i], a.grads[i], 1e-5, 1e-7));
    } else {
      // relative 1e-5, plus an absolute floor for gradients that are ~0
      CHECK(torch::allclose(a.grads[i], b.grads[i], /*rtol=*/1e-5, /*atol=*/1e-7));
    }
  }
  REQUIRE(a.buffers.size() == b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    INFO("buffer " << i);
    CHECK(torch::allclose(a.buffers[i], b.buffers[i], 1e-6, 1e-8));
  }
}

void require_identical(const StepResult& a, const StepResult& b) {
  CHECK(torch::equal(a.loss, b.loss));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::equal(a.grads[i], b.grads[i]));
  }
  REQUIRE(a.buffers.size() == b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    INFO("buffer " << i);
    CHECK(torch::equal(a.buffers[i], b.buffers[i]));
  }
}

UnetOptions small_options() {
  UnetOptions o;
  o.n_channels = 3;
  o.n_classes = 3;
  o.base_channels = 8;
  return o;
}

}  // namespace

TEST_CASE("Unet with every block checkpointed matches the plain model", "[model][checkpoint]") {
  for (bool bilinear : {false, true}) {
    INFO("bilinear=" << bilinear);
    auto o = small_options();
    o.bilinear = bilinear;
    const auto plain = train_step(o, 68, [](Unet&) {});
    const auto all = train_step(o, 68, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kAll); });
    require_same(plain, all);
    const auto balanced = train_step(o, 68, [](Unet& n) { n->use_checkpointing(); });
    require_same(plain, balanced);
    // min_memory also splits the skip convolutions: the same to rounding, not bit for bit.
    const auto min_memory =
        train_step(o, 68, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kMinMemory); });
    require_same(plain, min_memory, Gradients::kToScale);
    const auto min_memory_unsplit = train_step(o, 68, [](Unet& n) {
      n->use_checkpointing(true, CheckpointPolicy::kMinMemory);
      n->split_skip_convolutions(false);
    });
    require_same(plain, min_memory_unsplit);
  }
}

TEST_CASE("Unet with split skip convolutions matches the plain model with valid padding and group norm",
          "[model][checkpoint]") {
  // Valid padding convolves a window of the skip map; a norm other than BatchNorm runs
  // the DoubleConv's layers one by one after the split convolution.
  for (const auto norm : {dpunet::model::Norm::kBatch, dpunet::model::Norm::kGroup}) {
    INFO("norm " << dpunet::model::to_string(norm));
    auto o = small_options();
    o.padding = Padding::kValid;
    o.norm = norm;
    const auto plain = train_step(o, 188, [](Unet&) {});
    const auto split = train_step(o, 188, [](Unet& n) { n->split_skip_convolutions(true); });
    require_same(plain, split, Gradients::kToScale);
    const auto min_memory =
        train_step(o, 188, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kMinMemory); });
    require_same(plain, min_memory, Gradients::kToScale);
  }
}

TEST_CASE("Unet with split skip convolutions matches the plain model with valid padding on NHWC maps",
          "[model][checkpoint]") {
  // The skip maps' centre windows then give NHWC gradients (model/skip_window.h).
  auto o = small_options();
  o.padding = Padding::kValid;
  const auto nhwc = at::MemoryFormat::ChannelsLast;
  const auto plain = train_step(
      o, 188, [](Unet&) {}, nhwc);
  const auto min_memory = train_step(
      o, 188, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kMinMemory); }, nhwc);
  require_same(plain, min_memory, Gradients::kToScale);
}

TEST_CASE("Unet checkpoint policies select the expected blocks", "[model][checkpoint]") {
  Unet net(small_options());
  auto selected = [&net] {
    std::string names;
    for (const auto& b : net->block_names()) {
      if (net->is_checkpointed(b)) names += b + " ";
    }
    return names;
  };
  CHECK(selected().empty());
  net->use_checkpointing();
  CHECK(selected() == "inc down1 down2 up2 up3 ");
  net->use_checkpointing(true, CheckpointPolicy::kAll);
  CHECK(selected() == "inc down1 down2 down3 down4 up1 up2 up3 up4 outc ");
  CHECK(net->recomputes_norm_outputs());
  net->use_checkpointing(true, CheckpointPolicy::kMinMemory);
  CHECK(selected() == "inc down1 down2 down3 down4 up1 up2 up3 ");
  CHECK(net->recomputes_norm_outputs());
  net->use_checkpointing(true, CheckpointPolicy::kNormRelu);
  CHECK(selected().empty());
  CHECK(net->recomputes_norm_outputs());
  net->use_checkpointing(false);
  CHECK(selected().empty());
  CHECK_FALSE(net->recomputes_norm_outputs());
  CHECK(dpunet::model::parse_checkpoint_policy("norm_relu") == CheckpointPolicy::kNormRelu);
  CHECK(dpunet::model::parse_checkpoint_policy("min_memory") == CheckpointPolicy::kMinMemory);
  CHECK_THROWS_WITH(dpunet::model::parse_checkpoint_policy("some"),
                    HasSubstr("balanced, all, min_memory or norm_relu") && HasSubstr("'some'"));
}

namespace {

// The autograd nodes of `output`'s graph whose name contains `name`.
int count_nodes(const torch::Tensor& output, const std::string& name) {
  std::vector<torch::autograd::Node*> pending{output.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int found = 0;
  while (!pending.empty()) {
    torch::autograd::Node* node = pending.back();
    pending.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) ++found;
    for (const auto& edge : node->next_edges()) pending.push_back(edge.function.get());
  }
  return found;
}

}  // namespace

TEST_CASE("a checkpointed Unet's forward goes through one checkpoint per selected block", "[model][checkpoint]") {
  Unet net(small_options());
  net->train();
  const torch::Tensor x = torch::randn({1, 3, 32, 32});
  CHECK(count_nodes(net->forward(x), "CheckpointFunction") == 0);
  for (const auto policy : {CheckpointPolicy::kBalanced, CheckpointPolicy::kAll, CheckpointPolicy::kMinMemory}) {
    net->use_checkpointing(true, policy);
    int selected = 0;
    for (const auto& b : net->block_names()) selected += net->is_checkpointed(b) ? 1 : 0;
    INFO(selected << " blocks selected");
    REQUIRE(selected > 0);
    CHECK(count_nodes(net->forward(x), "CheckpointFunction") == selected);
  }
}

TEST_CASE("a Unet that splits its skip convolutions keeps no concatenation for backward", "[model][checkpoint]") {
  Unet net(small_options());
  net->train();
  const torch::Tensor x = torch::randn({1, 3, 32, 32});
  CHECK_FALSE(net->splits_skip_convolutions());
  CHECK(count_nodes(net->forward(x), "CatBackward") == 4);
  net->split_skip_convolutions(true);
  CHECK(net->splits_skip_convolutions());
  CHECK(count_nodes(net->forward(x), "CatBackward") == 0);
  // min_memory splits; up4, the one decoder block it does not recompute, would otherwise
  // keep its concatenation (and a copy of inc's output inside it) in the outer graph.
  net->use_checkpointing(true, CheckpointPolicy::kMinMemory);
  CHECK(net->splits_skip_convolutions());
  CHECK(count_nodes(net->forward(x), "CatBackward") == 0);
  net->split_skip_convolutions(false);
  CHECK(count_nodes(net->forward(x), "CatBackward") == 1);
  for (const auto policy : {CheckpointPolicy::kBalanced, CheckpointPolicy::kAll, CheckpointPolicy::kNormRelu}) {
    net->use_checkpointing(true, CheckpointPolicy::kMinMemory);
    net->use_checkpointing(true, policy);
    CHECK_FALSE(net->splits_skip_convolutions());
  }
  net->use_checkpointing(true, CheckpointPolicy::kMinMemory);
  net->use_checkpointing(false);
  CHECK_FALSE(net->splits_skip_convolutions());
}

TEST_CASE("Unet recomputing BatchNorm+ReLU outputs in backward changes no bit", "[model][checkpoint]") {
  for (bool valid : {false, true}) {
    INFO("valid padding " << valid);
    auto o = small_options();
    if (valid) o.padding = Padding::kValid;
    const int64_t size = valid ? 188 : 68;
    const auto kept = train_step(o, size, [](Unet&) {});
    const auto recomputed =
        train_step(o, size, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kNormRelu); });
    require_identical(recomputed, kept);
    const auto blocks_only = train_step(o, size, [](Unet& n) {
      n->use_checkpointing(true, CheckpointPolicy::kAll);
      n->recompute_norm_outputs(false);
    });
    const auto blocks_and_norm =
        train_step(o, size, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kAll); });
    require_identical(blocks_and_norm, blocks_only);
  }
}

namespace {

// Whether an autograd node named `name` lies anywhere behind `t`.
bool graph_has(const torch::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> pending{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!pending.empty()) {
    torch::autograd::Node* node = pending.back();
    pending.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) return true;
    for (const auto& edge : node->next_edges()) pending.push_back(edge.function.get());
  }
  return false;
}

}  // namespace

TEST_CASE("a DoubleConv run for its gradient only keeps its first BatchNorm+ReLU output", "[model][checkpoint]") {
  // As a checkpointed block is recomputed: its backward follows at once, so recomputing
  // the map a second time there would cost a pass and save nothing.
  torch::manual_seed(8);
  dpunet::model::DoubleConv block(4, 8, 8, dpunet::model::ConvStyle{});
  block->recompute_norm_output(true);
  const torch::Tensor x = torch::randn({2, 4, 12, 12});
  const torch::Tensor dy = torch::randn({2, 8, 12, 12});
  auto step = [&](OutputUse use) {
    block->zero_grad();
    const torch::Tensor y = block->run(x, use);
    const bool recomputes = graph_has(y, "NormReluConvFunction");
    y.backward(dy);
    std::vector<torch::Tensor> values{y.detach()};
    for (const auto& p : block->parameters()) values.push_back(p.grad().clone());
    return std::make_pair(recomputes, values);
  };
  const auto [read_recomputes, read] = step(OutputUse::kRead);
  const auto [gradient_only_recomputes, gradient_only] = step(OutputUse::kGradientOnly);
  CHECK(read_recomputes);
  CHECK_FALSE(gradient_only_recomputes);
  REQUIRE(read.size() == gradient_only.size());
  for (size_t i = 0; i < read.size(); ++i) CHECK(torch::equal(read[i], gradient_only[i]));
}

TEST_CASE("a checkpointed Unet asks each recomputed block's output for its gradient only", "[model][checkpoint]") {
  // Depth 4: nine DoubleConvs (inc, four Down, four Up); outc has no BatchNorm. Counted
  // during backward's recomputations only: the first forward reads every output. On the
  // CPU ATen's path writes them all the same (a GPU's fused kernels leave them unwritten).
  const std::vector<std::pair<CheckpointPolicy, int64_t>> cases{
      {CheckpointPolicy::kAll, 9}, {CheckpointPolicy::kMinMemory, 8}, {CheckpointPolicy::kNormRelu, 0}};
  for (const auto& [policy, recomputed_blocks] : cases) {
    INFO("policy " << static_cast<int>(policy));
    KernelUsage usage;
    {
      const KernelUsage::Scope recording(usage);
      train_step(small_options(), 68, [policy = policy](Unet& n) { n->use_checkpointing(true, policy); });
    }
    CHECK(usage.gradient_only_output.aten == recomputed_blocks);
    CHECK(usage.gradient_only_output.ours == 0);
  }
}

TEST_CASE("Unet checkpointing matches with valid padding and group norm", "[model][checkpoint]") {
  auto o = small_options();
  o.padding = Padding::kValid;
  o.norm = dpunet::model::Norm::kGroup;
  const auto plain = train_step(o, 188, [](Unet&) {});
  const auto ckpt = train_step(o, 188, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kAll); });
  require_same(plain, ckpt);
}

TEST_CASE("Unet BatchNorm statistics are updated once per checkpointed forward", "[model][checkpoint]") {
  const auto ckpt =
      train_step(small_options(), 64, [](Unet& n) { n->use_checkpointing(true, CheckpointPolicy::kAll); });
  torch::manual_seed(0);
  Unet probe(small_options());
  const auto names = probe->named_buffers();
  size_t counters = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].key().find("num_batches_tracked") != std::string::npos) {
      INFO(names[i].key());
      CHECK(ckpt.buffers[i].item<int64_t>() == 1);
      ++counters;
    }
  }
  CHECK(counters == 18);  // two BatchNorms in each of the 9 DoubleConvs
}

TEST_CASE("Unet checkpoints single blocks by name", "[model][checkpoint]") {
  const auto o = small_options();
  const auto plain = train_step(o, 64, [](Unet&) {});
  const auto some = train_step(o, 64, [](Unet& n) {
    n->set_checkpointing("down2", true);
    n->set_checkpointing("up4", true);
    n->set_checkpointing("outc", true);
    CHECK(n->is_checkpointed("down2"));
    CHECK_FALSE(n->is_checkpointed("down1"));
  });
  require_same(plain, some);

  Unet net(o);
  CHECK(net->block_names().size() == 10);
  CHECK_THROWS_WITH(net->set_checkpointing("down9", true), HasSubstr("no block 'down9'") && HasSubstr("inc down1"));
}

TEST_CASE("a U-Net step recomputing min_memory's blocks with split skip convolutions matches the plain one on a GPU",
          "[gpu]") {
  if (!torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU");
    return;
  }
  // Valid padding: the split convolutions read NHWC windows of the skip maps
  // (model/skip_window.h).
  const auto padding = GENERATE(Padding::kSame, Padding::kValid);
  UnetOptions o = small_options();
  o.padding = padding;
  o.depth = padding == Padding::kSame ? 3 : 4;
  const int64_t size = padding == Padding::kSame ? 64 : 188;  // 188: a valid tile at depth 4
  INFO("padding " << (padding == Padding::kSame ? "same" : "valid"));
  const auto plain = dpunet::test::unet_gpu_step(o, size);
  const auto min_memory = dpunet::test::unet_gpu_step(o, size, /*checkpointed=*/true, /*recompute_norm=*/true,
                                                      torch::kFloat, CheckpointPolicy::kMinMemory);
  CHECK(dpunet::test::within_scale(min_memory.output, plain.output, 1e-5));
  REQUIRE(min_memory.grads.size() == plain.grads.size());
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(dpunet::test::within_scale(min_memory.grads[i], plain.grads[i], 1e-4));
  }
}

TEST_CASE("a checkpointed Unet's backward may run after the Unet is gone", "[model][checkpoint]") {
  // Autograd keeps what a backward needs alive; the recomputed blocks must be among it.
  const auto o = small_options();
  std::vector<torch::Tensor> params, kept_grads;
  torch::Tensor loss;
  for (bool keep : {true, false}) {
    torch::manual_seed(42);
    Unet net(o);
    net->use_checkpointing(true, CheckpointPolicy::kAll);
    params = net->parameters();
    loss = net->forward(torch::randn({2, 3, 32, 32})).square().mean();
    if (!keep) {
      net = Unet(nullptr);  // the last holder of the model
      loss.backward();
    } else {
      loss.backward();
      for (const auto& p : params) kept_grads.push_back(p.grad().clone());
    }
  }
  REQUIRE(params.size() == kept_grads.size());
  for (size_t i = 0; i < params.size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(params[i].grad().defined());
    CHECK(torch::equal(params[i].grad(), kept_grads[i]));
  }
}
