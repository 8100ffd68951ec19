// RecomputeTape: what a checkpointed block's first forward records, its recomputation
// replays, in order, on the thread running the block; gradients are those of the plain
// block.
#include <torch/torch.h>
#include "support/catch.h"

#include "common/recompute_tape.h"
#include "model/activation_checkpoint.h"

using dpunet::RecomputeTape;

namespace {

// (x - mean(x)) * w with the mean treated as a constant, as BatchNorm's statistics are in
// the fused kernels' replay: taken from the tape when replaying, computed (and recorded)
// otherwise. `computed` counts the passes over x that the tape saves.
struct CenterScaleImpl : torch::nn::Module {
  torch::Tensor w;
  int computed = 0;
  CenterScaleImpl() { w = register_parameter("w", torch::linspace(0.5, 2.0, 3)); }
  torch::Tensor forward(const torch::Tensor& x) {
    RecomputeTape* tape = RecomputeTape::active();
    torch::Tensor mean;
    if (tape != nullptr && tape->replaying()) {
      const auto values = tape->replay_next();
      if (!values.empty()) mean = values[0];
    }
    if (!mean.defined()) {
      ++computed;
      mean = x.mean(0).detach();
      if (tape != nullptr && !tape->replaying()) tape->record({mean});
    }
    return (x - mean) * w;
  }
};
TORCH_MODULE(CenterScale);

}  // namespace

TEST_CASE("A checkpointed block's recomputation replays what its first forward recorded", "[model][checkpoint]") {
  torch::manual_seed(3);
  const torch::Tensor input = torch::randn({4, 3});

  CenterScale plain;
  const torch::Tensor x_plain = input.clone().requires_grad_(true);
  plain->forward(x_plain).square().sum().backward();
  REQUIRE(plain->computed == 1);

  CenterScale checkpointed;
  const torch::Tensor x = input.clone().requires_grad_(true);
  const torch::Tensor y = dpunet::model::checkpoint(checkpointed, x);
  REQUIRE(checkpointed->computed == 1);  // the first forward
  y.square().sum().backward();
  REQUIRE(checkpointed->computed == 1);  // the recomputation took the recorded mean
  REQUIRE(torch::equal(x.grad(), x_plain.grad()));
  REQUIRE(torch::equal(checkpointed->w.grad(), plain->w.grad()));
  REQUIRE(RecomputeTape::active() == nullptr);
}

namespace {

// A checkpointed block holding another checkpointed block and a layer after it: the
// inner block runs plainly in the outer one's first forward and checkpointed in its
// recomputation, so its layers must not use the outer block's tape.
struct NestedImpl : torch::nn::Module {
  CenterScale inner, after;
  NestedImpl() {
    register_module("inner", inner);
    register_module("after", after);
  }
  torch::Tensor forward(const torch::Tensor& x) { return after->forward(dpunet::model::checkpoint(inner, x) * 3 + 1); }
};
TORCH_MODULE(Nested);

}  // namespace

TEST_CASE("A checkpointed block inside another keeps to its own tape", "[model][checkpoint]") {
  torch::manual_seed(4);
  const torch::Tensor input = torch::randn({5, 3});
  Nested plain, checkpointed;
  const torch::Tensor x_plain = input.clone().requires_grad_(true);
  // Cubed: the gradient arriving at `after` must not be centred, or a wrong mean there
  // would cancel out of its weight's gradient.
  plain->after->forward(plain->inner->forward(x_plain) * 3 + 1).pow(3).sum().backward();

  const torch::Tensor x = input.clone().requires_grad_(true);
  dpunet::model::checkpoint(checkpointed, x).pow(3).sum().backward();
  REQUIRE(torch::allclose(x.grad(), x_plain.grad()));
  REQUIRE(torch::allclose(checkpointed->after->w.grad(), plain->after->w.grad()));
  REQUIRE(torch::allclose(checkpointed->inner->w.grad(), plain->inner->w.grad()));
  // The layer after the inner block took its own recorded mean: computed once.
  REQUIRE(checkpointed->after->computed == 1);
}

TEST_CASE("RecomputeTape scopes record from empty, replay from the start and nest", "[model][checkpoint]") {
  RecomputeTape outer, inner;
  REQUIRE(RecomputeTape::active() == nullptr);
  {
    RecomputeTape::Scope recording(outer, /*replay=*/false);
    REQUIRE(RecomputeTape::active() == &outer);
    outer.record({torch::ones({1})});
    {
      RecomputeTape::Scope nested(inner, /*replay=*/false);
      REQUIRE(RecomputeTape::active() == &inner);
      inner.record({});
    }
    REQUIRE(RecomputeTape::active() == &outer);
    outer.record({torch::full({1}, 2.0)});
  }
  REQUIRE(RecomputeTape::active() == nullptr);
  REQUIRE(outer.size() == 2);
  REQUIRE(inner.size() == 1);
  for (int pass = 0; pass < 2; ++pass) {  // a second backward replays from the start again
    RecomputeTape::Scope replaying(outer, /*replay=*/true);
    REQUIRE(outer.replaying());
    REQUIRE(outer.replay_next()[0].item<float>() == 1.0f);
    REQUIRE(outer.replay_next()[0].item<float>() == 2.0f);
    REQUIRE(outer.replay_next().empty());  // spent: the caller computes for itself
  }
  RecomputeTape::Scope recording_again(outer, /*replay=*/false);
  REQUIRE(outer.size() == 0);
}
