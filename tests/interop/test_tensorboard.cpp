// TensorBoard's own reader sees a run's curves as metrics.jsonl holds them, one timeline
// after a resume from an older checkpoint.
#include "support/catch.h"

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "support/run_command.h"
#include "support/train_fixture.h"

using dpunet::test::run_command;

TEST_CASE("TensorBoard reads the training and validation curves that metrics.jsonl holds", "[interop][e2e]") {
  if (run_command(DPUNET_PYTHON " -c 'import tensorboard' 2>/dev/null").exit_code != 0) {
    DPUNET_SKIP(DPUNET_PYTHON " cannot import tensorboard");
    return;
  }
  dpunet::test::TrainFixture f;
  const std::string config = f.write_config();
  REQUIRE(f.train(1, config).exit_code == 0);  // 8 steps, validation at 4 and 8
  const auto resumed =
      f.train(1, config + " --resume " + dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(4));
  REQUIRE(resumed.exit_code == 0);
  const auto read = run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/tests/interop/read_tensorboard.py " +
                                f.run_dir() + "/tensorboard 2>&1");
  INFO(read.output);
  REQUIRE(read.exit_code == 0);
  const auto scalars = nlohmann::json::parse(read.output);
  std::map<int64_t, double> train_loss, val_dice;
  std::istringstream rows(dpunet::read_file(f.run_dir() + "/metrics.jsonl"));
  for (std::string line; std::getline(rows, line);) {
    const auto row = nlohmann::json::parse(line);
    (row["kind"] == "train" ? train_loss : val_dice)[row["step"].get<int64_t>()] =
        row[row["kind"] == "train" ? "loss" : "mean_dice"].get<double>();
  }
  REQUIRE(train_loss.size() == 8);
  REQUIRE(scalars["train/loss"].size() == train_loss.size());  // each step once: the redone ones replaced
  for (const auto& point : scalars["train/loss"]) {
    const auto step = point[0].get<int64_t>();
    REQUIRE(train_loss.count(step) == 1);
    CHECK(point[1].get<double>() == Approx(train_loss[step]).epsilon(1e-6));
  }
  REQUIRE(scalars["val/mean_dice"].size() == 2);
  CHECK(scalars["val/mean_dice"][1][0] == 8);
  CHECK(scalars["val/mean_dice"][1][1].get<double>() == Approx(val_dice[8]).epsilon(1e-6));
  CHECK(scalars.contains("train/lr"));
  CHECK(scalars.contains("val/dice_class_1"));
}
