// `dpunet train` end to end on CPU: exact resume on 1 and 2 ranks, resuming on another
// number of ranks, preemption by a real signal under mpirun, and bad input.
#include <torch/torch.h>
#include "support/catch.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "support/train_fixture.h"
#include "train/tensorboard_events.h"

using dpunet::test::require_same_optimizer_state;
using dpunet::test::require_same_weights;
using dpunet::test::TrainFixture;

namespace {

std::string checkpoint_at(const TrainFixture& f, int64_t step) {
  return dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(step);
}

// The run directory's superseded-* folders.
std::vector<std::string> superseded_folders(const TrainFixture& f) {
  std::vector<std::string> folders;
  for (const auto& entry : std::filesystem::directory_iterator(f.run_dir())) {
    if (entry.path().filename().string().rfind("superseded-", 0) == 0) folders.push_back(entry.path().string());
  }
  return folders;
}

// How many TensorBoard events each step has, over the event files in `folder`.
std::map<int64_t, int> events_per_step(const std::string& folder) {
  std::map<int64_t, int> events;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    for (const auto& record : dpunet::train::read_event_records(dpunet::read_file(entry.path().string()))) {
      if (record.step >= 0) ++events[record.step];
    }
  }
  return events;
}

// How many metrics rows of kind "train" each step has.
std::map<int64_t, int> train_rows_per_step(const std::string& metrics) {
  std::map<int64_t, int> rows;
  std::istringstream in(dpunet::read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "train") ++rows[row["step"].get<int64_t>()];
  }
  return rows;
}

// The loss of each "train" row, by step.
std::map<int64_t, double> train_losses(const std::string& metrics) {
  std::map<int64_t, double> losses;
  std::istringstream in(dpunet::read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "train") losses[row["step"].get<int64_t>()] = row["loss"].get<double>();
  }
  return losses;
}

// Trains on one rank and sends it SIGUSR1 once its log shows `wait_for`: the interrupt
// script's report ("exit=N seconds=S") and the run's log.
std::pair<std::string, std::string> signal_one_rank(const TrainFixture& f, const std::string& config,
                                                    const std::string& wait_for) {
  std::string command = f.train_command(1, config);
  command = command.substr(0, command.rfind(" 2>&1"));
  const auto result = f.interrupt(command, wait_for, "kill -USR1 $(pgrep -P $job)");  // timeout's child: dpunet
  return {result.output, dpunet::read_file(f.log_path())};
}

// A run validating at every step, so that whichever step a stop lands on has one due.
const std::string kValidationEveryStep =
    "train: {batch_size: 2, steps: 100000}\nvalidation: {every_steps: 1, batch_size: 4}\n";

// Trains `config` (kValidationEveryStep's) until SIGUSR1 stops it after step 3; returns
// the step it stopped at, whose validation the stop skipped (the step before's was done).
int64_t stop_with_validation_pending(const TrainFixture& f, const std::string& config) {
  const auto [report, output] = signal_one_rank(f, config, "step 3/");
  INFO(output);
  REQUIRE_THAT(report, HasSubstr("exit=75"));
  const int64_t step = dpunet::test::signalled_stop_step(output);
  CHECK_THAT(output, HasSubstr("validation step " + std::to_string(step - 1) + ":"));
  REQUIRE_THAT(output, !HasSubstr("validation step " + std::to_string(step) + ":"));
  return step;
}

// A one-rank run stopped at `step` by --stop-at-step with no validation run yet (the
// validations its resume then owes or not).
void stop_unvalidated_at(const TrainFixture& f, const std::string& config, int64_t step) {
  const auto first = f.train(1, config + " --stop-at-step " + std::to_string(step));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  REQUIRE_THAT(first.output, !HasSubstr("validation step"));
}

std::map<int64_t, int> once_each(int64_t first, int64_t last) {
  std::map<int64_t, int> rows;
  for (int64_t step = first; step <= last; ++step) rows[step] = 1;
  return rows;
}

}  // namespace

TEST_CASE("resuming from an older checkpoint sets the later history aside and redoes it exactly", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  REQUIRE(f.train(1, config).exit_code == 0);  // 8 steps, a checkpoint every 2
  const auto resumed = f.train(1, config + " --resume " + checkpoint_at(f, 4));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("moved 2 checkpoint(s) and 5 metrics row(s)"));
  const auto folders = superseded_folders(f);
  REQUIRE(folders.size() == 1);
  require_same_weights(folders[0] + "/checkpoints/step-00000008.ckpt", checkpoint_at(f, 8));
  CHECK(train_rows_per_step(f.run_dir() + "/metrics.jsonl") == once_each(1, 8));
  CHECK(train_rows_per_step(folders[0] + "/metrics.jsonl") == once_each(5, 8));
  // TensorBoard's events alike: one per logged step, two where validation ran (4 and 8).
  std::map<int64_t, int> logged = once_each(1, 8);
  logged[4] = logged[8] = 2;
  CHECK(events_per_step(f.run_dir() + "/tensorboard") == logged);
  std::map<int64_t, int> redone = once_each(5, 8);
  redone[8] = 2;
  CHECK(events_per_step(folders[0] + "/tensorboard") == redone);
  CHECK_THAT(resumed.output, HasSubstr("(and 5 TensorBoard event(s))"));

  // Back to the set-aside timeline: a checkpoint from outside the run directory's own
  // starts another timeline here, so the whole current one is set aside, not mixed in.
  const std::string abandoned = folders[0] + "/checkpoints/step-00000008.ckpt";
  const auto back = f.train(1, config + " --set train.steps=10 --resume " + abandoned);
  INFO(back.output);
  REQUIRE(back.exit_code == 0);
  CHECK_THAT(back.output, HasSubstr(abandoned + " is not one of " + f.run_dir() + "/checkpoints's own checkpoints") &&
                              HasSubstr("moved 4 checkpoint(s)"));
  auto now = superseded_folders(f);
  std::sort(now.begin(), now.end());
  REQUIRE(now.size() == 2);
  CHECK(train_rows_per_step(now[1] + "/metrics.jsonl") == once_each(1, 8));
  CHECK(train_rows_per_step(f.run_dir() + "/metrics.jsonl") == once_each(9, 10));
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  // The resumed checkpoint's copy (written before the first step) and the run's own.
  CHECK(store.list() == std::vector<std::string>{checkpoint_at(f, 8), checkpoint_at(f, 10)});
  require_same_weights(abandoned, checkpoint_at(f, 8));
  // No pointer names a checkpoint of the set-aside timeline: `best` is this run's step 10,
  // or absent while no validation here beat the score carried over from the checkpoint.
  const auto best = store.best();
  CHECK((!best || *best == checkpoint_at(f, 10)));
}

TEST_CASE("the best checkpoint is the one of the highest validation score, kept beside the last ones", "[train][e2e]") {
  TrainFixture f;
  const std::string config =
      f.write_config("validation: {every_steps: 2, batch_size: 4}\ncheckpoint: {every_steps: 2, keep_last: 2}\n");
  const auto run = f.train(1, config);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  // The first validation with the highest mean Dice (a tie is no improvement).
  std::map<int64_t, double> scores;
  std::istringstream in(dpunet::read_file(f.run_dir() + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "val") scores[row["step"].get<int64_t>()] = row["mean_dice"].get<double>();
  }
  REQUIRE(scores.size() == 4);
  int64_t best_step = 0;
  double best = -1;
  for (const auto& [step, score] : scores) {
    if (score > best) best = score, best_step = step;
  }
  INFO("best step " << best_step);
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  REQUIRE(store.best());
  CHECK(*store.best() == checkpoint_at(f, best_step));
  // keep_last 2: steps 6 and 8, and the best when it is older.
  std::vector<std::string> kept{checkpoint_at(f, 6), checkpoint_at(f, 8)};
  if (best_step < 6) kept.insert(kept.begin(), checkpoint_at(f, best_step));
  CHECK(store.list() == kept);
}

TEST_CASE("logging.tensorboard: false writes metrics.jsonl and no event files", "[train][e2e]") {
  TrainFixture f;
  const auto run =
      f.train(1, f.write_config("train: {steps: 2}\nschedule: {warmup_steps: 1}\nlogging: {tensorboard: false}\n"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(train_rows_per_step(f.run_dir() + "/metrics.jsonl") == once_each(1, 2));
  CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/tensorboard"));
  CHECK_THAT(run.output, !HasSubstr("no data.val"));
}

TEST_CASE("a run without a validation set says it keeps no best checkpoint", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config("train: {steps: 2}\nschedule: {warmup_steps: 1}\n");
  const auto run = f.train(1, config + " --set data.val=");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("no data.val: no validation, and no best checkpoint (checkpoint.keep_best)"));
  CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/checkpoints/best"));
}

TEST_CASE("fp16 on the wire without fp16's loss scaler trains, and warns what it risks", "[train][e2e]") {
  TrainFixture f;
  const auto run = f.train(2, f.write_config("train: {steps: 2}\nschedule: {warmup_steps: 1}\n"
                                             "distributed: {wire_dtype: fp16}\n"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("distributed.wire_dtype fp16 without fp16's loss scaler") &&
                             HasSubstr("gradients below about 6e-8 x 2 ranks vanish"));
  const auto bf16 = f.train(2, f.write_config("train: {steps: 2}\nschedule: {warmup_steps: 1}\n"
                                              "distributed: {wire_dtype: bf16}\n") +
                                   " --set run.dir=" + f.dir() / "bf16");
  INFO(bf16.output);
  REQUIRE(bf16.exit_code == 0);
  CHECK_THAT(bf16.output, !HasSubstr("wire_dtype"));
}

TEST_CASE("a fresh start in a used run directory sets the earlier run aside", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  REQUIRE(f.train(1, config + " --stop-at-step 4").exit_code == 0);
  const auto fresh = f.train(1, config + " --stop-at-step 2");
  INFO(fresh.output);
  REQUIRE(fresh.exit_code == 0);
  CHECK_THAT(fresh.output, HasSubstr("moved 2 checkpoint(s) and 5 metrics row(s)"));
  CHECK(train_rows_per_step(f.run_dir() + "/metrics.jsonl") == once_each(1, 2));
  CHECK(events_per_step(f.run_dir() + "/tensorboard") == once_each(1, 2));
  const auto set_aside = superseded_folders(f);
  REQUIRE(set_aside.size() == 1);
  std::map<int64_t, int> earlier = once_each(1, 4);
  earlier[4] = 2;  // validation at step 4
  CHECK(events_per_step(set_aside[0] + "/tensorboard") == earlier);
  // resume auto continues this run, not the earlier one that went further.
  const auto resumed = f.train(1, config + " --resume auto --stop-at-step 3");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("resumed from " + checkpoint_at(f, 2)));
  // The same command again: step 3 was reached, so no step 4 is trained.
  const auto again = f.train(1, config + " --resume auto --stop-at-step 3");
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, HasSubstr("already at step 3"));
  CHECK_FALSE(std::filesystem::exists(checkpoint_at(f, 4)));
  // The training set's statistics are in the saved config, for validation and prediction.
  CHECK_THAT(dpunet::read_file(f.run_dir() + "/config.yaml"),
             HasSubstr("channel_mean: [") && HasSubstr("channel_std: ["));
}

TEST_CASE("a resume whose epoch order changed starts the next epoch and says why", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  REQUIRE(f.train(1, config + " --stop-at-step 3").exit_code == 0);  // 6 of epoch 0's 24 samples
  const auto resumed = f.train(1, config + " --resume auto --stop-at-step 4 --set run.seed=4");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output,
             HasSubstr("run.seed changed") && HasSubstr("starting epoch 1") &&
                 HasSubstr("keys changed from the checkpoint's config (checkpoint vs now):\n  run.seed: 3 vs 4"));
  const auto again = f.train(1, config + " --resume auto --stop-at-step 5 --set run.seed=4");
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, !HasSubstr("changed since") && !HasSubstr("keys changed"));
  // The same number of samples in another shard order is another epoch order too.
  const std::string data = f.dir() / "data";
  std::filesystem::rename(data + "/train-00000.h5", data + "/swap.h5");
  std::filesystem::rename(data + "/train-00001.h5", data + "/train-00000.h5");
  std::filesystem::rename(data + "/swap.h5", data + "/train-00001.h5");
  const auto swapped = f.train(1, config + " --resume auto --stop-at-step 6 --set run.seed=4");
  INFO(swapped.output);
  REQUIRE(swapped.exit_code == 0);
  CHECK_THAT(swapped.output, HasSubstr("the training data (24 samples in 2 shards") && HasSubstr("starting epoch 2"));
}

TEST_CASE("training shards that are also validation shards are refused", "[train][e2e]") {
  TrainFixture f;
  // The folder data synth wrote holds train-*.h5 and val-*.h5 alike.
  const auto folder = f.train(1, f.write_config() + " --set data.train=" + f.dir() / "data");
  INFO(folder.output);
  CHECK(folder.exit_code != 0);
  CHECK_THAT(folder.output, HasSubstr("data.train: " + f.dir() / "data holds shards of several sets") &&
                                HasSubstr("e.g. " + f.dir() / "data/train-*.h5"));
  const auto glob = f.train(1, f.write_config() + " --set 'data.train=" + f.dir() / "data/*.h5'");
  INFO(glob.output);
  CHECK(glob.exit_code != 0);
  CHECK_THAT(glob.output, HasSubstr("both read " + f.dir() / "data/val-00000.h5") &&
                              HasSubstr("e.g. " + f.dir() / "data/train-*.h5"));
  CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/checkpoints"));
}

TEST_CASE("a patch larger than the training images is mirror-padded, and said", "[train][e2e]") {
  TrainFixture f;  // 48x48 images
  const auto run = f.train(1, f.write_config("augment: {patch_size: 64}\ntrain: {batch_size: 2, steps: 3}\n"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("note: augment.patch_size 64 is larger than the training images (48x48)"));
  const auto fits =
      f.train(1, f.write_config("train: {batch_size: 2, steps: 3}\n") + " --set run.dir=" + f.dir() / "fits");
  INFO(fits.output);
  CHECK(fits.exit_code == 0);
  CHECK_THAT(fits.output, !HasSubstr("is larger than the training images"));
}

TEST_CASE("an epoch that ends inside an accumulated step still validates and checkpoints", "[train][e2e]") {
  TrainFixture f;
  // 12 batches per epoch, 5 per step: epoch 0 ends at the second batch of step 3.
  const std::string config = f.write_config(
      "train: {batch_size: 2, steps: 4, accumulation: 5}\nvalidation: {every_steps: 0}\ncheckpoint: {every_steps: "
      "100}\n");
  const auto run = f.train(1, config);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("12 batches per epoch (2+ steps of 5)") && HasSubstr("validation step 3:"));
  // The synthetic shards name their classes: the validation line says them.
  CHECK_THAT(run.output, HasSubstr(" dice background:") && HasSubstr(" cell:"));
  CHECK(std::filesystem::exists(checkpoint_at(f, 3)));
  CHECK_FALSE(std::filesystem::exists(checkpoint_at(f, 2)));
}

TEST_CASE("training N+M steps equals training N, resuming and training M, bit for bit", "[train][e2e]") {
  const int ranks = GENERATE(1, 2, 3);
  TrainFixture f;
  // A log line every 4 steps and a stop at 3: the loss of steps 1-3 waits in the
  // checkpoint for the line at step 4. Each rank's loss its own (not the global batch's):
  // the line averages ranks' sums that differ, and must still come out the same bits.
  const std::string config = f.write_config() + " --set logging.every_steps=4 --set loss.global_batch=false";
  const auto straight = f.train(ranks, config);
  INFO(straight.output);
  REQUIRE(straight.exit_code == 0);
  std::filesystem::rename(checkpoint_at(f, 8), f.dir() / "straight.ckpt");
  const std::map<int64_t, double> straight_losses = train_losses(f.run_dir() + "/metrics.jsonl");
  dpunet::remove_tree(f.run_dir());

  const auto first = f.train(ranks, config + " --stop-at-step 3");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.output, HasSubstr("stopped at step 3"));
  const auto second = f.train(ranks, config + " --resume auto");
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK_THAT(second.output, HasSubstr("resumed from") && HasSubstr("step-00000003.ckpt"));
  require_same_weights(f.dir() / "straight.ckpt", checkpoint_at(f, 8));
  // And the same optimizer moments: with 3 ranks, a first step after the resume reduced
  // in another bucket layout differs there in the last bits before the weights do.
  require_same_optimizer_state(f.dir() / "straight.ckpt", checkpoint_at(f, 8));
  // The same log lines with the same losses.
  const std::map<int64_t, double> resumed_losses = train_losses(f.run_dir() + "/metrics.jsonl");
  REQUIRE(straight_losses.size() == 2);
  REQUIRE(resumed_losses.size() == straight_losses.size());
  for (const auto& [step, loss] : straight_losses) {
    INFO("step " << step);
    REQUIRE(resumed_losses.count(step) == 1);
    CHECK(resumed_losses.at(step) == loss);
  }
  // The run's clock goes on where it stopped: time_s never runs backwards in the file.
  std::istringstream metrics(dpunet::read_file(f.run_dir() + "/metrics.jsonl"));
  double previous = 0;
  int rows = 0;
  for (std::string line; std::getline(metrics, line); ++rows) {
    const auto row = nlohmann::json::parse(line);
    INFO(line);
    REQUIRE(row.contains("time_s"));
    CHECK(row["time_s"].get<double>() >= previous);
    previous = row["time_s"].get<double>();
  }
  CHECK(rows >= 4);  // a train row every 4 steps, and the validations
}

TEST_CASE("a run resumes on a different number of ranks", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  REQUIRE(f.train(2, config + " --stop-at-step 4").exit_code == 0);
  const auto resumed = f.train(1, config + " --resume auto");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("written by 2 ranks, this run has 1") && HasSubstr("done: 8 steps"));
  // One GPU to several: BatchNorm's weights and running statistics carry over to
  // SyncBatchNorm, whose statistics then cover every rank's batch.
  const auto synced = f.train(2, config + " --resume auto --set train.steps=10 --set model.norm=sync_batch");
  INFO(synced.output);
  REQUIRE(synced.exit_code == 0);
  CHECK_THAT(synced.output, HasSubstr("model.norm: batch vs sync_batch") && HasSubstr("done: 10 steps"));
}

TEST_CASE("a signal under mpirun checkpoints every rank's work and exits for requeue", "[train][e2e]") {
  TrainFixture f;
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
  // The signal goes to mpirun (which forwards it to every rank) or straight to one rank.
  const std::string target = GENERATE(std::string("mpirun"), std::string("one rank"));
  std::string command = f.train_command(2, config);
  command = command.substr(0, command.rfind(" 2>&1"));
  const std::string kill = target == "mpirun"
                               ? "kill -USR1 $(pgrep -P $job)"  // timeout's child is mpirun
                               : "kill -TERM $(pgrep -f " + dpunet::test::training_rank_pattern(config) + " | head -1)";
  const auto result = f.interrupt(command, "step 3/", kill);
  const std::string output = dpunet::read_file(f.log_path());
  INFO(output);
  CHECK_THAT(result.output, HasSubstr("exit=75"));
  CHECK_THAT(output, HasSubstr("stopped by a signal at step"));
  f.check_resumes_from_stop(config, output);
}

TEST_CASE("a console reader that goes away does not end the run: it trains to the end and checkpoints",
          "[train][e2e]") {
  TrainFixture f;
  // `| head`, or a tee ended by the same Ctrl-C that asked for a checkpoint: the pipe
  // closes while the run still writes its lines.
  const std::string script = f.dir() / "piped.sh";
  std::ofstream(script) << f.train_command(1, f.write_config()) << " | head -n 2 > /dev/null\n"
                        << "echo status=${PIPESTATUS[0]}\n";
  const auto result = dpunet::test::run_command("bash " + script + " 2>&1");
  INFO(result.output);
  CHECK_THAT(result.output, HasSubstr("status=0"));
  CHECK(std::filesystem::exists(checkpoint_at(f, 8)));
  CHECK(train_losses(f.run_dir() + "/metrics.jsonl").count(8) == 1);
}

TEST_CASE("a stop request skips the validation due at that step: the grace time is the checkpoint's", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config(kValidationEveryStep);
  const int64_t step = stop_with_validation_pending(f, config);
  // The resumed run does the skipped validation before its first step, so its metrics
  // hold every validation an uninterrupted run's would.
  const auto resumed = f.train(1, config + " --resume auto --stop-at-step " + std::to_string(step + 1));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  const auto skipped = resumed.output.find("validation step " + std::to_string(step) + ":");
  REQUIRE(skipped != std::string::npos);
  CHECK(skipped < resumed.output.find("step " + std::to_string(step + 1) + "/"));
  CHECK_THAT(resumed.output, HasSubstr("validation step " + std::to_string(step + 1) + ":"));
}

TEST_CASE("a run at its --stop-at-step still does the validation a stop left pending there", "[train][e2e]") {
  // As when the signal came at the --stop-at-step itself: the same command again (a
  // requeue) trains nothing, but validates that step, as a run that went on would have.
  TrainFixture f;
  const std::string config = f.write_config(kValidationEveryStep);
  const int64_t step = stop_with_validation_pending(f, config);
  const std::string again = config + " --resume auto --stop-at-step " + std::to_string(step);
  const auto resumed = f.train(1, again);
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("already at step " + std::to_string(step)) &&
                                 HasSubstr("validation step " + std::to_string(step) + ":") &&
                                 !HasSubstr("step " + std::to_string(step + 1) + "/"));
  // Done once: the checkpoint now says so.
  const auto third = f.train(1, again);
  INFO(third.output);
  REQUIRE(third.exit_code == 0);
  CHECK_THAT(third.output, !HasSubstr("validation step"));
}

TEST_CASE("a resume auto on two ranks stops both with rank 0's reason when a checkpoint cannot be read",
          "[train][e2e]") {
  TrainFixture f;
  // Reading /proc/self/mem from its start fails with EIO, as a failing disk would: the
  // store stops there rather than take the file for a damaged one and go back a step.
  std::filesystem::create_directories(f.run_dir() + "/checkpoints");
  const std::string unreadable = f.run_dir() + "/checkpoints/step-00000005.ckpt";
  std::filesystem::create_symlink("/proc/self/mem", unreadable);
  const auto result = f.train(2, f.write_config() + " --resume auto");
  INFO(result.output);
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.output, HasSubstr("cannot read " + unreadable) && HasSubstr("Input/output error"));
  CHECK_THAT(result.output, !HasSubstr("MPI_ABORT"));
  CHECK(std::filesystem::is_symlink(unreadable));  // not set aside
}

TEST_CASE("a stop during start-up writes the resumed checkpoint into the run directory, wherever it came from",
          "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config(kValidationEveryStep);
  const int64_t step = stop_with_validation_pending(f, config);
  // Resumed into another run directory, whose lock a run on another machine holds: the
  // new run waits for it with its signal handlers in place, and takes the signal there.
  const std::string other = f.dir() / "other";
  std::filesystem::create_directories(other);
  dpunet::write_file_atomically(other + "/.lock", "pid 1 on another-host\n");
  std::string command = f.train_command(1, config + " --set run.dir=" + other + " --resume " + checkpoint_at(f, step));
  command = command.substr(0, command.rfind(" 2>&1"));
  const std::string log = f.dir() / "startup.log", script = f.dir() / "startup.sh";
  std::ofstream(script) << "flock -o " << other << "/.lock sleep 300 & holder=$!\n"
                        << "until ! flock -n " << other << "/.lock true; do sleep 0.05; done\n"
                        << command << " > " << log << " 2>&1 & job=$!\n"
                        << "for i in $(seq 1 600); do grep -q 'is locked by' " << log << " && break; sleep 0.1; done\n"
                        << "kill -USR1 $(pgrep -P $job); pkill -P $holder; wait $holder\n"
                        << "wait $job; echo exit=$?\n";
  const auto stopped = dpunet::test::run_command("bash " + script + " 2>&1");
  const std::string stopped_log = dpunet::read_file(log);
  INFO(stopped_log);
  CHECK_THAT(stopped.output, HasSubstr("exit=75"));
  CHECK_THAT(stopped_log,
             HasSubstr("is not one of") && HasSubstr("stopped by a signal before the first step; checkpoint of step " +
                                                     std::to_string(step) + " written"));
  // --resume auto there continues from it: the pending validation first, then the next step.
  const auto resumed =
      f.train(1, config + " --set run.dir=" + other + " --resume auto --stop-at-step " + std::to_string(step + 1));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  const std::string own = dpunet::checkpoint::CheckpointStore(other).path_for_step(step);
  CHECK_THAT(resumed.output, HasSubstr("resumed from " + own + " at step " + std::to_string(step)));
  const auto validated = resumed.output.find("validation step " + std::to_string(step) + ":");
  REQUIRE(validated != std::string::npos);
  CHECK(validated < resumed.output.find("step " + std::to_string(step + 1) + "/"));
}

TEST_CASE("a run continued from another run's checkpoint chooses its best among its own validations", "[train][e2e]") {
  TrainFixture f;
  // The other run kept no best checkpoint, but its step-4 validation was scored.
  const std::string config = f.write_config();
  const auto other = f.train(1, config + " --set checkpoint.keep_best=false --stop-at-step 4");
  INFO(other.output);
  REQUIRE(other.exit_code == 0);
  REQUIRE_THAT(other.output, HasSubstr("validation step 4:"));
  const std::string next = f.dir() / "next";
  const auto continued = f.train(1, config + " --resume " + checkpoint_at(f, 4) + " --set run.dir=" + next);
  INFO(continued.output);
  REQUIRE(continued.exit_code == 0);
  CHECK_THAT(continued.output, HasSubstr("is not this run directory's own: its best score"));
  // Step 8's validation is this run's first: its best, whatever the other run scored.
  const std::optional<std::string> best = dpunet::checkpoint::CheckpointStore(next).best();
  REQUIRE(best.has_value());
  CHECK(std::filesystem::path(*best).filename() == "step-00000008.ckpt");
}

TEST_CASE("a resumed run validating another set chooses its best among the new scores", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  const auto first = f.train(1, config + " --stop-at-step 4");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  REQUIRE_THAT(first.output, HasSubstr("validation step 4:") && HasSubstr("(best)"));
  const std::string reset = "is not compared with the scores from here on";
  // The same shards named another way (as a copy on a job's scratch disk would be): the
  // same set, whose scores still compare.
  const auto renamed =
      f.train(1, config + " --resume auto --stop-at-step 5 --set data.val=" + f.dir() / "data/val-00000.h5");
  INFO(renamed.output);
  REQUIRE(renamed.exit_code == 0);
  CHECK_THAT(renamed.output, !HasSubstr(reset));
  // Another set: its scores start a new best.
  const auto made = dpunet::test::run_command(DPUNET_BINARY " data synth --out " + f.dir() / "other" +
                                              " --samples 2 --shards 1 --val-samples 4 --size 48 --seed 9 2>&1");
  REQUIRE(made.exit_code == 0);
  const auto other =
      f.train(1, config + " --resume auto --stop-at-step 8 --set data.val=" + f.dir() / "other/val-00000.h5");
  INFO(other.output);
  REQUIRE(other.exit_code == 0);
  CHECK_THAT(other.output, HasSubstr("the validation set, augment.patch_size or the normalisation changed: the best "
                                     "score so far (") &&
                               HasSubstr(reset));
  const auto validated = other.output.find("validation step 8:");
  REQUIRE(validated != std::string::npos);
  CHECK(other.output.find("(best)", validated) != std::string::npos);
}

TEST_CASE("a run continued from another run's checkpoint holds a copy of it before its first step", "[train][e2e]") {
  // Killed (no signal to checkpoint on) before a checkpoint of its own (it writes none):
  // --resume auto continues from the copy, not afresh.
  TrainFixture f;
  const std::string config = f.write_config();
  const auto other = f.train(1, config + " --stop-at-step 4");
  INFO(other.output);
  REQUIRE(other.exit_code == 0);
  const std::string next = f.dir() / "next";
  const std::string continued = f.train_command(
      1, config + " --resume " + checkpoint_at(f, 4) + " --set run.dir=" + next + " --set train.steps=100000 " +
             "--set checkpoint.every_steps=0 --set checkpoint.every_epoch=false " + "--set checkpoint.keep_best=false");
  const auto killed =
      f.interrupt(continued.substr(0, continued.rfind(" 2>&1")), "step 6/", "kill -KILL $(pgrep -P $job)");
  const std::string killed_log = dpunet::read_file(f.log_path());
  INFO(killed.output << killed_log);
  REQUIRE_THAT(killed.output, HasSubstr("exit=137"));
  const std::string copy = dpunet::checkpoint::CheckpointStore(next).path_for_step(4);
  CHECK_THAT(killed_log, HasSubstr("step 4's checkpoint written into " + next + "/checkpoints"));
  REQUIRE(std::filesystem::exists(copy));
  require_same_weights(checkpoint_at(f, 4), copy, /*parameters_only=*/false);
  require_same_optimizer_state(checkpoint_at(f, 4), copy);
  const auto resumed = f.train(1, config + " --set run.dir=" + next + " --resume auto --stop-at-step 5");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("resumed from " + copy + " at step 4"));
  // Also when --stop-at-step leaves it nothing to train.
  const std::string third = f.dir() / "third";
  const auto at_stop =
      f.train(1, config + " --resume " + checkpoint_at(f, 4) + " --set run.dir=" + third + " --stop-at-step 4");
  INFO(at_stop.output);
  REQUIRE(at_stop.exit_code == 0);
  CHECK_THAT(at_stop.output, HasSubstr("already at step 4"));
  CHECK(std::filesystem::exists(dpunet::checkpoint::CheckpointStore(third).path_for_step(4)));
}

TEST_CASE("train.steps lowered to a resumed step ends the run there, validated, and below it is refused",
          "[train][e2e]") {
  TrainFixture f;
  // Validation every 4 steps: step 3 had none. A warmup shorter than every length tried.
  const std::string config = f.write_config() + " --set logging.every_steps=2 --set schedule.warmup_steps=1";
  const auto first = f.train(1, config + " --stop-at-step 3");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto below = f.train(1, config + " --resume auto --set train.steps=2");
  INFO(below.output);
  CHECK(below.exit_code != 0);
  CHECK_THAT(below.output, HasSubstr("train.steps 2 ends the run before step 3 of " + checkpoint_at(f, 3)));
  CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/DONE"));
  // Validating every 3 steps from here on: whether step 3 was validated is the stopped
  // run's schedule (every 4), not the new one.
  const auto at = f.train(1, config + " --resume auto --set train.steps=3 --set validation.every_steps=3");
  INFO(at.output);
  REQUIRE(at.exit_code == 0);
  CHECK_THAT(at.output, HasSubstr("validating step 3 first: train.steps ends the run there") &&
                            HasSubstr("validation step 3:") && HasSubstr("done: 3 steps"));
  CHECK(dpunet::read_file(f.run_dir() + "/DONE") == "3\n");
  // Finished: the same command again finds nothing to do, and validates nothing twice.
  const auto again = f.train(1, config + " --resume auto --set train.steps=3 --set validation.every_steps=3");
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, !HasSubstr("validation step 3:"));
  CHECK_THAT(again.output, HasSubstr("the run is complete at step 3 (train.steps 3): nothing to do"));
  CHECK(dpunet::read_file(f.run_dir() + "/DONE") == "3\n");
}

TEST_CASE("train.steps lowered to a step stopped mid-epoch validates it, also when the epoch cannot be continued",
          "[train][e2e]") {
  TrainFixture f;
  // Validation once an epoch (12 steps of 2 here): step 3 had none.
  const std::string config = f.write_config("validation: {every_steps: 0}\n");
  stop_unvalidated_at(f, config, 3);
  // A new seed starts the next epoch; step 3 is still the end of this run, unvalidated.
  const auto at = f.train(1, config + " --resume auto --set train.steps=3 --set run.seed=4");
  INFO(at.output);
  REQUIRE(at.exit_code == 0);
  CHECK_THAT(at.output, HasSubstr("run.seed changed") && HasSubstr("validation step 3:") && HasSubstr("done: 3 steps"));
  CHECK(dpunet::read_file(f.run_dir() + "/DONE") == "3\n");
}

TEST_CASE("a stop signal during the last step completes the run instead of asking for a requeue", "[train][e2e]") {
  TrainFixture f;
  // Slow steps (1500 micro-batches, seconds each), so that the signal sent on step 1's line
  // lands in the last.
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 2, accumulation: 1500}\nschedule: {warmup_steps: 1}\n");
  const auto [report, output] = signal_one_rank(f, config, "step 1/");
  INFO(output);
  CHECK_THAT(report, HasSubstr("exit=0"));
  CHECK_THAT(output, HasSubstr("stop signal at the last step, 2: the run is complete") &&
                         HasSubstr("validation step 2:") && HasSubstr("done: 2 steps"));
  CHECK(dpunet::read_file(f.run_dir() + "/DONE") == "2\n");
}

TEST_CASE("a resume whose larger global batch leaves no batch of the epoch ends that epoch there", "[train][e2e]") {
  TrainFixture f;
  // 24 samples: 12 steps of 2 on one rank. Stopped at 11, two are left: no batch of 4 for
  // two ranks, so epoch 0 ended at step 11, and its validation is due there.
  const std::string config = f.write_config(
      "data: {remainder: drop}\ntrain: {batch_size: 2, steps: 16}\nvalidation: {every_steps: 0, batch_size: 4}\n");
  stop_unvalidated_at(f, config, 11);
  const auto resumed = f.train(2, config + " --resume auto --stop-at-step 12");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("the 2 samples left of epoch 0 fill no global batch of 4") &&
                                 HasSubstr("that epoch ended at step 11") &&
                                 HasSubstr("validating step 11 first: its epoch ended there"));
  const auto validated = resumed.output.find("validation step 11:");
  REQUIRE(validated != std::string::npos);
  CHECK(validated < resumed.output.find("step 12/"));
  // The validation names the epoch that ended; the next step is the next epoch's.
  std::istringstream metrics(dpunet::read_file(f.run_dir() + "/metrics.jsonl"));
  int checked = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "val" && row["step"] == 11) {
      CHECK(row["epoch"] == 0);
      ++checked;
    }
    if (row["kind"] == "train" && row["step"] == 12) {
      CHECK(row["epoch"] == 1);
      ++checked;
    }
  }
  CHECK(checked == 2);
}

TEST_CASE("a second run in a run directory in use is refused, naming the first", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config("train: {batch_size: 2, steps: 100000}\n");
  std::string command = f.train_command(1, config);
  command = command.substr(0, command.rfind(" 2>&1"));
  const std::string second = command + " > " + f.dir() / "second.log 2>&1";
  const auto result = f.interrupt(command, "step 2/", second + "; kill -TERM $(pgrep -P $job)");
  CHECK_THAT(result.output, HasSubstr("exit=75"));  // the first run went on, then stopped as asked
  const std::string output = dpunet::read_file(f.dir() / "second.log");
  INFO(output);
  CHECK_THAT(output, HasSubstr("run.dir " + f.run_dir() + " is in use by another training run (pid "));
  CHECK_THAT(output, !HasSubstr("moved"));  // nothing of the first run was set aside
}

TEST_CASE("bad training input gives one clear error", "[train][e2e]") {
  TrainFixture f;
  SECTION("a config error is printed once, with file, line and key") {
    const std::string config = f.write_config("optimizer: {lrr: 0.1}\n");
    const auto result = f.train(2, config);
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output,
               HasSubstr(config + ":") && HasSubstr("optimizer.lrr") && HasSubstr("did you mean 'optimizer.lr'"));
    const auto first = result.output.find("dpunet: error");
    REQUIRE(first != std::string::npos);
    CHECK(result.output.find("dpunet: error", first + 1) == std::string::npos);
  }
  SECTION("an empty config path, as an unset variable gives, or a step beyond counting") {
    const auto result = f.train(1, "\"\" --set run.dir=" + f.run_dir());
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr("an empty path (an unset variable?)"));
    CHECK_FALSE(std::filesystem::exists(f.run_dir()));
    // Nor a step past int64's range, which strtoll would have saturated.
    const auto beyond = f.train(1, f.write_config() + " --stop-at-step 99999999999999999999");
    CHECK(beyond.exit_code != 0);
    CHECK_THAT(beyond.output, HasSubstr("--stop-at-step: must be a whole number of at least 1"));
  }
  SECTION("a config file that only some ranks can read") {
    // Rank 1 is given a path that does not exist there (a node-local path on one node).
    const std::string config = f.write_config();
    const std::string per_rank = "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then c=" + f.dir() / "elsewhere.yaml" +
                                 "; else c=" + config + "; fi; exec \"" DPUNET_BINARY_PATH "\" train $c'";
    const auto result =
        dpunet::test::run_command("OMP_NUM_THREADS=1 timeout 120 " DPUNET_MPI_LAUNCHER " 2 " + per_rank + " 2>&1");
    INFO(result.output);
    CHECK(result.exit_code == 2);  // every rank stopped together, not 124 (a hang)
    CHECK_THAT(result.output, HasSubstr("rank 1 on ") && HasSubstr(f.dir() / "elsewhere.yaml"));
  }
  SECTION("a model too large for memory names the keys that made it") {
    // A 3 GB address-space limit makes the allocation fail early instead of swapping.
    const auto result = dpunet::test::run_command(
        "ulimit -v 3000000; " +
        f.train_command(1, f.write_config() + " --set model.base_channels=4096 --set model.depth=4"));
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr("model.base_channels 4096 with model.depth 4: the model's weights do not fit"));
  }
  SECTION("GPU settings for a CPU") {
    const auto bf16 = f.train(1, f.write_config() + " --set precision.dtype=bf16");
    CHECK(bf16.exit_code == 2);
    CHECK_THAT(bf16.output, HasSubstr("precision.dtype, run.device: bf16/fp16 autocast needs CUDA; use fp32 on CPU"));
    if (!torch::cuda::is_available()) {
      const auto cuda = f.train(1, f.write_config() + " --set run.device=cuda");
      CHECK(cuda.exit_code != 0);
      CHECK_THAT(cuda.output, HasSubstr("device cuda was asked for but no GPU is visible"));
      CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/checkpoints"));
    }
  }
  SECTION("missing training data") {
    const auto result = f.train(1, f.write_config() + " --set data.train=" + f.dir() / "nothing/*.h5");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr(f.dir() / "nothing/*.h5") && HasSubstr("empty"));
    // The start made the run directory and failed: it leaves none behind.
    CHECK_FALSE(std::filesystem::exists(f.run_dir()));
  }
  SECTION("an unwritable run directory") {
    dpunet::write_file_atomically(f.dir() / "file", "x");
    const auto result = f.train(1, f.write_config() + " --set run.dir=" + f.dir() / "file/run");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr("run.dir") && HasSubstr(f.dir() / "file/run"));
  }
  SECTION("a corrupt checkpoint named on the command line") {
    dpunet::write_file_atomically(f.dir() / "bad.ckpt", std::string(100, 'x'));
    const auto result = f.train(1, f.write_config() + " --resume " + f.dir() / "bad.ckpt");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr(f.dir() / "bad.ckpt") && HasSubstr("not a dpunet checkpoint"));
  }
  SECTION("a checkpoint of another model") {
    const std::string config = f.write_config();
    REQUIRE(f.train(1, config + " --stop-at-step 2").exit_code == 0);
    const auto result = f.train(1, config + " --resume auto --set model.depth=3");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr("model differs") && HasSubstr("model.depth: 2 vs 3"));
  }
  SECTION("a checkpoint of another optimizer") {
    const std::string config = f.write_config();
    REQUIRE(f.train(1, config + " --stop-at-step 2").exit_code == 0);
    const auto result = f.train(1, config + " --resume auto --set optimizer.name=sgd");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr("step-00000002.ckpt: written with optimizer.name adamw, the config has sgd"));
  }
  SECTION("validation shards stored in other units than the training set's statistics") {
    REQUIRE(dpunet::test::run_command(DPUNET_BINARY " data synth --out " + f.dir() / "val16" +
                                      " --samples 2 --shards 1 --size 48 --dtype uint16 2>&1")
                .exit_code == 0);
    const auto result = f.train(1, f.write_config() + " --set data.val=" + f.dir() / "val16/train-00000.h5");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output,
               HasSubstr("data.val " + f.dir() / "val16/train-00000.h5" + ": images are stored as uint16") &&
                   !HasSubstr("step 1/"));
  }
  SECTION("training shards in other units than the statistics the config gives") {
    const auto result = f.train(1, f.write_config() +
                                       " --set data.channel_mean=[10] --set data.channel_std=[2] --set "
                                       "data.stats_pixel_type=uint16 --set run.dir=" +
                                       f.dir() / "units");
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr(": images are stored as uint8, but the normalisation statistics were "
                                        "measured on uint16 pixels") &&
                                  HasSubstr("give statistics of uint8 pixels"));
    CHECK_FALSE(std::filesystem::exists(f.dir() / "units"));  // refused before the run started
  }
  SECTION("resume auto skips a damaged newest checkpoint") {
    const std::string config = f.write_config();
    REQUIRE(f.train(1, config + " --stop-at-step 4").exit_code == 0);
    std::filesystem::resize_file(checkpoint_at(f, 4), 50);
    const auto result = f.train(1, config + " --resume auto --stop-at-step 5");
    INFO(result.output);
    CHECK(result.exit_code == 0);
    CHECK_THAT(result.output, HasSubstr("skipping damaged checkpoint") && HasSubstr("resumed from") &&
                                  HasSubstr("step-00000002.ckpt"));
  }
}
