// The multi-tensor and fused optimizers against LibTorch's per-parameter loops, their
// shared checkpoint state, and gradient clipping without a host read-back.
#include <torch/torch.h>
#include "support/catch.h"

#include "train/optimizer.h"

using dpunet::train::OptimizerImplementation;
using dpunet::train::OptimizerSettings;

namespace {

// Parameters of the shapes a U-Net has, one of them channels_last like the GPU path's.
std::vector<torch::Tensor> make_parameters() {
  torch::manual_seed(3);
  std::vector<torch::Tensor> params = {
      torch::randn({8, 4, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast),
      torch::randn({8}),
      torch::randn({2, 8, 1, 1}),
      torch::randn({5}),
  };
  for (auto& p : params) p.set_requires_grad(true);
  return params;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

// Gradients for step `step`; the last parameter gets none on odd steps, so its step count
// (and AdamW's bias correction) falls behind the others'.
void set_gradients(std::vector<torch::Tensor>& params, int step) {
  torch::manual_seed(100 + step);
  for (size_t i = 0; i < params.size(); ++i) {
    if (i + 1 == params.size() && step % 2 == 1) {
      params[i].mutable_grad() = torch::Tensor();
      continue;
    }
    // The gradient has the parameter's layout, as DDP's bucket views give it.
    params[i].mutable_grad() = torch::empty_like(params[i]).copy_(torch::randn(params[i].sizes()));
  }
}

OptimizerSettings settings(const std::string& name, OptimizerImplementation implementation) {
  OptimizerSettings s;
  s.name = name;
  s.implementation = implementation;
  s.lr = 1e-2;
  s.weight_decay = 0.05;
  s.momentum = 0.9;
  return s;
}

// Runs `steps` steps with a learning rate that changes every step.
void run(torch::optim::Optimizer& optimizer, std::vector<torch::Tensor>& params, int first, int steps) {
  for (int step = first; step < first + steps; ++step) {
    set_gradients(params, step);
    dpunet::train::set_learning_rate(optimizer, 1e-2 / (1 + step));
    optimizer.step();
  }
}

double max_relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = b[i].abs().max().item<double>() + 1e-12;
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
  }
  return worst;
}

bool bit_identical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("foreach AdamW and SGD are bit-identical to LibTorch's loops", "[train]") {
  for (const std::string name : {"adamw", "sgd"}) {
    INFO(name);
    auto reference = make_parameters();
    auto multi = clones(reference);
    auto loop = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kPerParameter), reference);
    auto foreach = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kForeach), multi);
    run(*loop, reference, 0, 6);
    run(*foreach, multi, 0, 6);
    CHECK(bit_identical(multi, reference));
    CHECK(multi[0].is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}

TEST_CASE("fused AdamW and SGD match LibTorch's loops to rounding", "[train]") {
  for (const std::string name : {"adamw", "sgd"}) {
    INFO(name);
    auto reference = make_parameters();
    auto fused_params = clones(reference);
    const auto before = clones(reference);
    auto loop = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kPerParameter), reference);
    auto fused = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kFused), fused_params);
    run(*loop, reference, 0, 6);
    run(*fused, fused_params, 0, 6);
    CHECK(max_relative_difference(fused_params, reference) < 1e-5);
    // Not trivially equal: the parameters moved.
    CHECK(max_relative_difference(reference, before) > 1e-3);
  }
}

TEST_CASE("optimizer state saved by one implementation resumes in another", "[train]") {
  for (const std::string name : {"adamw", "sgd"}) {
    INFO(name);
    // Straight through: 4 steps with the fused optimizer, then 3 more with it.
    auto straight = make_parameters();
    auto fused = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kFused), straight);
    run(*fused, straight, 0, 4);
    auto resumed = clones(straight);
    std::ostringstream saved;
    {
      torch::serialize::OutputArchive archive;
      fused->save(archive);
      archive.save_to(saved);
    }
    run(*fused, straight, 4, 3);

    // Resumed from the saved state into the foreach implementation.
    auto foreach = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kForeach), resumed);
    std::istringstream stream(saved.str());
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    foreach
      ->load(archive);
    run(*foreach, resumed, 4, 3);
    CHECK(max_relative_difference(resumed, straight) < 1e-5);

    // Without the saved state the moments restart, and the result is visibly different.
    auto fresh_params = clones(resumed);
    auto restarted = dpunet::train::make_optimizer(settings(name, OptimizerImplementation::kForeach), fresh_params);
    run(*restarted, fresh_params, 4, 3);
    CHECK(max_relative_difference(fresh_params, straight) > 1e-4);
  }
}

TEST_CASE("a step flagged inf/NaN is skipped as if never issued, on the device or by a read-back", "[train]") {
  // Steps 0..5 with step 2 flagged: against the same run with step 2 left out.
  const std::vector<bool> flagged = {false, false, true, false, false, false};
  for (const std::string name : {"adamw", "sgd"}) {
    for (auto implementation : {OptimizerImplementation::kFused, OptimizerImplementation::kForeach}) {
      INFO(name << " implementation " << static_cast<int>(implementation));
      auto reference = make_parameters();
      auto skipping = clones(reference);
      auto plain = dpunet::train::make_optimizer(settings(name, implementation), reference);
      auto flagging = dpunet::train::make_optimizer(settings(name, implementation), skipping);
      for (int step = 0; step < static_cast<int>(flagged.size()); ++step) {
        set_gradients(skipping, step);
        dpunet::train::set_learning_rate(*flagging, 1e-2 / (1 + step));
        const torch::Tensor found_inf = torch::full({1}, flagged[step] ? 1.0f : 0.0f);
        const auto before = clones(skipping);
        dpunet::train::step_unless_found_inf(*flagging, found_inf);
        CHECK(bit_identical(skipping, before) == flagged[step]);
        if (flagged[step]) continue;
        set_gradients(reference, step);
        dpunet::train::set_learning_rate(*plain, 1e-2 / (1 + step));
        plain->step();
      }
      // AdamW's bias correction counts only the steps taken.
      CHECK(bit_identical(skipping, reference));

      // Saved, the state holds the steps taken; resumed, both go on alike.
      std::ostringstream saved;
      {
        torch::serialize::OutputArchive archive;
        flagging->save(archive);
        archive.save_to(saved);
      }
      auto resumed = clones(skipping);
      auto loaded = dpunet::train::make_optimizer(settings(name, implementation), resumed);
      std::istringstream stream(saved.str());
      torch::serialize::InputArchive archive;
      archive.load_from(stream);
      loaded->load(archive);
      run(*loaded, resumed, 6, 2);
      run(*plain, reference, 6, 2);
      CHECK(bit_identical(resumed, reference));
      run(*flagging, skipping, 6, 2);  // and the original, past its save, as well
      CHECK(bit_identical(skipping, reference));
    }
  }
}

TEST_CASE("gradient clipping scales to the norm limit like torch's, and leaves small gradients alone", "[train]") {
  auto params = make_parameters();
  set_gradients(params, 0);
  auto reference = clones(params);
  for (size_t i = 0; i < params.size(); ++i) reference[i].mutable_grad() = params[i].grad().clone();

  const double limit = 2.0;
  const double expected_norm = torch::nn::utils::clip_grad_norm_(reference, limit);
  const torch::Tensor norm = dpunet::train::clip_gradient_norm(params, limit);
  CHECK(norm.dim() == 0);
  CHECK(norm.item<double>() == Approx(expected_norm).epsilon(1e-6));
  REQUIRE(expected_norm > limit);
  std::vector<torch::Tensor> grads, reference_grads;
  for (size_t i = 0; i < params.size(); ++i) {
    grads.push_back(params[i].grad());
    reference_grads.push_back(reference[i].grad());
  }
  CHECK(max_relative_difference(grads, reference_grads) < 1e-6);
  const double clipped = dpunet::train::clip_gradient_norm(params, 1e6).item<double>();
  CHECK(clipped == Approx(limit).epsilon(1e-5));

  const auto before = clones(grads);
  dpunet::train::clip_gradient_norm(params, 1e6);
  CHECK(bit_identical(grads, before));
}

TEST_CASE("an unknown optimizer implementation names the key", "[train]") {
  CHECK_THROWS_WITH(dpunet::train::parse_optimizer_implementation("apex"),
                    HasSubstr("optimizer.implementation") && HasSubstr("apex"));
}
