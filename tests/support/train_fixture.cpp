// TrainFixture.
#include "support/train_fixture.h"

#include <torch/torch.h>
#include "support/catch.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/store.h"
#include "common/error.h"
#include "config/config.h"
#include "train/setup.h"

namespace dpunet::test {

int64_t signalled_stop_step(const std::string& log) {
  const std::string said = "stopped by a signal at step ";
  const size_t at = log.find(said);
  REQUIRE(at != std::string::npos);
  return std::stoll(log.substr(at + said.size()));
}

void TrainFixture::check_resumes_from_stop(const std::string& config, const std::string& log) const {
  const int64_t step = signalled_stop_step(log);
  const std::string written = checkpoint::CheckpointStore(run_dir()).path_for_step(step);
  const auto latest = checkpoint::CheckpointStore(run_dir()).latest_valid([](const std::string&) {});
  REQUIRE(latest);
  REQUIRE(*latest == written);
  const auto resumed = train(2, config + " --resume auto --stop-at-step 100");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("resumed from " + written + " at step " + std::to_string(step)));
}

TrainFixture::TrainFixture() {
  const auto made = run_command(DPUNET_BINARY " data synth --out " + dir_ / "data" +
                                " --samples 24 --shards 2 --val-samples 6 --size 48 --seed 1 2>&1");
  DPUNET_CHECK(made.exit_code == 0, "data synth failed: ", made.output);
}

std::string TrainFixture::write_config(const std::string& extra) const {
  std::ostringstream base;
  base << "run: {dir: " << run_dir() << ", seed: 3, device: cpu}\n"
       << "model: {n_classes: 3, base_channels: 8, depth: 2, norm: batch}\n"
       << "data: {train: '" << dir_ / "data/train-*.h5"
       << "', val: '" << dir_ / "data/val-*.h5"
       << "', workers: 2}\n"
       << "augment: {patch_size: 32, affine: 0.5, noise: 0.5}\n"
       << "train: {batch_size: 2, steps: 8}\n"
       << "schedule: {warmup_steps: 2}\n"
       << "validation: {every_steps: 4, batch_size: 4}\n"
       << "checkpoint: {every_steps: 2, keep_last: 20}\n"
       << "logging: {every_steps: 1, progress: lines}\n";
  // `extra`'s keys replace the tiny config's, section by section (a config may name a
  // section once).
  YAML::Node config = YAML::Load(base.str());
  const YAML::Node overrides = YAML::Load(extra);
  if (overrides.IsMap()) {
    for (const auto& section : overrides) {
      for (const auto& key : section.second) config[section.first.Scalar()][key.first.Scalar()] = key.second;
    }
  }
  const std::string path = dir_ / "cfg.yaml";
  YAML::Emitter out;
  out << config;
  std::ofstream(path) << out.c_str() << "\n";
  return path;
}

std::string TrainFixture::train_command(int ranks, const std::string& arguments) const {
  // One intra-op thread per rank: the same arithmetic in every run, so runs compare bit for bit.
  const std::string launch = ranks == 1 ? "" : DPUNET_MPI_LAUNCHER " " + std::to_string(ranks) + " ";
  return "OMP_NUM_THREADS=1 timeout 300 " + launch + DPUNET_BINARY " train " + arguments + " 2>&1";
}

CommandResult TrainFixture::train(int ranks, const std::string& arguments) const {
  return run_command(train_command(ranks, arguments));
}

CommandResult TrainFixture::interrupt(const std::string& command, const std::string& wait_for,
                                      const std::string& action) const {
  const std::string script = dir_ / "interrupt.sh";
  std::ofstream(script) << command << " > " << log_path() << " 2>&1 &\njob=$!\n"
                        << "for i in $(seq 1 600); do grep -q '" << wait_for << "' " << log_path()
                        << " && break; sleep 0.1; done\n"
                        << "start=$(date +%s)\n"
                        << action << "\nwait $job\nstatus=$?\n"
                        << "echo exit=$status seconds=$(( $(date +%s) - start ))\n";
  return run_command("bash " + script + " 2>&1");
}

std::vector<std::pair<std::string, at::Tensor>> checkpoint_weights(const std::string& path) {
  const checkpoint::LoadedCheckpoint loaded(path);
  config::Config config = config::parse_config(loaded.state().config_yaml, path);
  // SyncBatchNorm's weights and statistics are BatchNorm's, read without a communicator.
  if (config.model.norm == "sync_batch") config.model.norm = "batch";
  model::Unet net = train::build_model(config, nullptr);
  loaded.restore_model(*net);
  std::vector<std::pair<std::string, at::Tensor>> weights;
  for (const auto& item : net->named_parameters()) weights.emplace_back(item.key(), item.value().detach().clone());
  for (const auto& item : net->named_buffers()) weights.emplace_back(item.key(), item.value().detach().clone());
  return weights;
}

void require_same_weights(const std::string& a, const std::string& b, bool parameters_only) {
  const auto left = checkpoint_weights(a);
  const auto right = checkpoint_weights(b);
  REQUIRE(left.size() == right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    const std::string& name = left[i].first;
    const bool statistic = name.find("running_") != std::string::npos || name.find("num_batches") != std::string::npos;
    if (parameters_only && statistic) continue;
    INFO(name);
    REQUIRE(name == right[i].first);
    REQUIRE(torch::equal(left[i].second, right[i].second));
  }
}

namespace {

// Each parameter's optimizer state tensors, in parameter order.
std::vector<std::pair<std::string, at::Tensor>> checkpoint_optimizer_state(const std::string& path) {
  const checkpoint::LoadedCheckpoint loaded(path);
  const config::Config config = config::parse_config(loaded.state().config_yaml, path);
  model::Unet net = train::build_model(config, nullptr);
  const auto optimizer = train::build_optimizer(config, net->parameters());
  loaded.restore_optimizer(*optimizer);
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& item : net->named_parameters()) {
    const auto found = optimizer->state().find(item.value().unsafeGetTensorImpl());
    if (found == optimizer->state().end()) continue;
    if (const auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(found->second.get())) {
      state.emplace_back(item.key() + " exp_avg", adamw->exp_avg());
      state.emplace_back(item.key() + " exp_avg_sq", adamw->exp_avg_sq());
    } else if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(found->second.get())) {
      state.emplace_back(item.key() + " momentum", sgd->momentum_buffer());
    }
  }
  return state;
}

}  // namespace

void require_same_optimizer_state(const std::string& a, const std::string& b) {
  const auto left = checkpoint_optimizer_state(a);
  const auto right = checkpoint_optimizer_state(b);
  REQUIRE(!left.empty());
  REQUIRE(left.size() == right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    INFO(left[i].first);
    REQUIRE(left[i].first == right[i].first);
    REQUIRE(torch::equal(left[i].second, right[i].second));
  }
}

std::string training_rank_pattern(const std::string& config) {
  return "'^" + regex_literal(DPUNET_BINARY_PATH " train " + config) + "'";
}

std::string training_rank_pid(const std::string& config, int rank) {
  // Open MPI gives each rank its number in the environment.
  return "$(for p in $(pgrep -f " + training_rank_pattern(config) +
         "); do tr '\\0' '\\n' < /proc/$p/environ 2> /dev/null | " +
         "grep -qx OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + " && echo $p; done)";
}

}  // namespace dpunet::test
