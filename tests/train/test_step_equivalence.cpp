// `dpunet train`'s own step against the arithmetic it stands for: N ranks of batch b train
// the weights one process with batch N*b would (the global batch's loss, SyncBatchNorm,
// the gradient clipped by its global norm after the all-reduce), and accumulating k
// micro-batches of b trains what one batch of k*b would. Whole images and no
// augmentation, so each sample enters both runs alike; SGD, whose update is linear in
// the gradient, so rounding differences stay rounding-sized.
#include <torch/torch.h>
#include "support/catch.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "support/train_fixture.h"

using dpunet::test::TrainFixture;

namespace {

constexpr int64_t kSteps = 4;

// Trains kSteps steps in its own run directory, or stops after `stop_at`, and returns
// the checkpoint of the last step taken.
std::string train_to_end(const TrainFixture& f, int ranks, const std::string& config, const std::string& name,
                         const std::string& settings, int64_t stop_at = 0) {
  const std::string run = f.dir() / name;
  const std::string stop = stop_at > 0 ? " --stop-at-step " + std::to_string(stop_at) : "";
  const auto result = f.train(
      ranks, config + " --set run.dir=" + run + " --set train.steps=" + std::to_string(kSteps) + " " + settings + stop);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  return dpunet::checkpoint::CheckpointStore(run).path_for_step(stop_at > 0 ? stop_at : kSteps);
}

// The learning rate metrics.jsonl gives for the first step of the run whose final
// checkpoint is `checkpoint`.
double first_step_lr(const std::string& checkpoint) {
  const auto run = std::filesystem::path(checkpoint).parent_path().parent_path();
  std::istringstream rows(dpunet::read_file((run / "metrics.jsonl").string()));
  for (std::string line; std::getline(rows, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "train" && row["step"] == 1) return row["lr"].get<double>();
  }
  FAIL("no train row for step 1 in " << (run / "metrics.jsonl").string());
  return 0;
}

// The largest difference between the two checkpoints' parameters, relative to the
// largest parameter value (running statistics left out: they follow the batches).
double largest_relative_difference(const std::string& a, const std::string& b) {
  const auto left = dpunet::test::checkpoint_weights(a);
  const auto right = dpunet::test::checkpoint_weights(b);
  REQUIRE(left.size() == right.size());
  double difference = 0, scale = 0;
  for (size_t i = 0; i < left.size(); ++i) {
    const std::string& name = left[i].first;
    REQUIRE(name == right[i].first);
    if (name.find("running_") != std::string::npos || name.find("num_batches") != std::string::npos) continue;
    difference = std::max(difference, (left[i].second - right[i].second).abs().max().item<double>());
    scale = std::max(scale, left[i].second.abs().max().item<double>());
  }
  return difference / scale;
}

std::string equivalence_config(const TrainFixture& f) {
  return f.write_config(
      "augment: {enabled: false, patch_size: 0}\n"
      "optimizer: {name: sgd, lr: 0.2, momentum: 0.9, weight_decay: 0.0001}\n"
      "schedule: {warmup_steps: 2}\n"
      "checkpoint: {every_steps: 0, every_epoch: false, keep_best: false}\n"
      "validation: {every_steps: 0}\n");
}

}  // namespace

TEST_CASE("2 ranks of batch 2 train the weights 1 rank of batch 4 does: loss, SyncBatchNorm and clipping global",
          "[train][e2e]") {
  TrainFixture f;
  const std::string config = equivalence_config(f) + " --set model.norm=sync_batch --set optimizer.grad_clip=0.2";
  const std::string one = train_to_end(f, 1, config, "one", "--set train.batch_size=4");
  const std::string two = train_to_end(f, 2, config, "two", "--set train.batch_size=2");
  CHECK(largest_relative_difference(one, two) < 1e-5);
  // What the comparison can tell apart: the clipping is at work (without it the weights
  // go elsewhere), and so is each rank's share (one rank of batch 2 sees half the data).
  const std::string unclipped =
      train_to_end(f, 1, config, "unclipped", "--set optimizer.grad_clip=0 --set train.batch_size=4");
  CHECK(largest_relative_difference(one, unclipped) > 1e-3);
  const std::string half = train_to_end(f, 1, config, "half", "--set train.batch_size=2");
  CHECK(largest_relative_difference(one, half) > 1e-3);
}

TEST_CASE("2 micro-batches of 2 accumulated train the weights one batch of 4 does", "[train][e2e]") {
  TrainFixture f;
  // Per-sample normalisation and the pixels' mean loss: a micro-batch's share is exact
  // (BatchNorm's statistics and Dice over a micro-batch are not the whole batch's).
  const std::string config = equivalence_config(f) + " --set model.norm=group --set loss.dice_weight=0";
  const std::string whole = train_to_end(f, 1, config, "whole", "--set train.batch_size=4");
  const std::string accumulated =
      train_to_end(f, 1, config, "accumulated", "--set train.batch_size=2 --set train.accumulation=2");
  CHECK(largest_relative_difference(whole, accumulated) < 1e-5);
  // What the comparison can tell apart: one batch of 2 (half the data). Without the
  // division by the micro-batch count, the step would be twice as long and fail above.
  const std::string half = train_to_end(f, 1, config, "half", "--set train.batch_size=2");
  CHECK(largest_relative_difference(whole, half) > 1e-3);
}

TEST_CASE("the step uses the learning rate the log gives for it, through the warm-up", "[train][e2e]") {
  TrainFixture f;
  // One step from the same weights on the same batch, at three points of a warm-up: the
  // update is the same gradient times each rate (SGD's first step is linear in it), so
  // the weights' differences are in the ratio of the logged rates' differences.
  const std::string config = equivalence_config(f) + " --set optimizer.grad_clip=0 --set train.batch_size=4";
  const std::string a = train_to_end(f, 1, config, "a", "--set schedule.warmup_steps=1", /*stop_at=*/1);
  const std::string b = train_to_end(f, 1, config, "b", "--set schedule.warmup_steps=2", /*stop_at=*/1);
  const std::string c = train_to_end(f, 1, config, "c", "--set schedule.warmup_steps=3", /*stop_at=*/1);
  const double lr_a = first_step_lr(a), lr_b = first_step_lr(b), lr_c = first_step_lr(c);
  INFO("logged learning rates " << lr_a << ", " << lr_b << ", " << lr_c);
  REQUIRE(lr_a != lr_b);
  REQUIRE(lr_a != lr_c);
  const auto wa = dpunet::test::checkpoint_weights(a), wb = dpunet::test::checkpoint_weights(b),
             wc = dpunet::test::checkpoint_weights(c);
  double mismatch = 0, scale = 0;
  for (size_t i = 0; i < wa.size(); ++i) {
    if (wa[i].first.find("running_") != std::string::npos || wa[i].first.find("num_batches") != std::string::npos) {
      continue;
    }
    // w_x = w_0 - lr_x u: (w_a - w_b)(lr_c - lr_a) = (w_a - w_c)(lr_b - lr_a).
    const torch::Tensor left = (wa[i].second - wb[i].second) * (lr_c - lr_a);
    const torch::Tensor right = (wa[i].second - wc[i].second) * (lr_b - lr_a);
    mismatch = std::max(mismatch, (left - right).abs().max().item<double>());
    scale = std::max(scale, right.abs().max().item<double>());
  }
  REQUIRE(scale > 0);
  CHECK(mismatch / scale < 1e-3);
}
