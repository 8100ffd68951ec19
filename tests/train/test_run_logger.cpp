// RunLogger: metrics rows that cannot be written end the run with the file named,
// instead of leaving a silent gap in the curves.
#include <signal.h>
#include <sys/resource.h>
#include "support/catch.h"

#include <cmath>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "support/temp_dir.h"
#include "train/run_logger.h"

namespace {

// The rows of a run directory's metrics.jsonl, parsed.
std::vector<nlohmann::json> metrics_rows(const std::string& run_dir) {
  std::istringstream lines(dpunet::read_file(run_dir + "/metrics.jsonl"));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace

TEST_CASE("a metrics row that cannot be written (a full disk) stops the run and names the file", "[train]") {
  dpunet::test::TempDir dir;
  dpunet::train::RunLogger logger(dir.path(), /*rank=*/0, "lines");
  logger.open_metrics();
  dpunet::train::TrainRecord record;
  record.step = 1;
  record.total_steps = 10;
  logger.train(record);
  const auto written = std::filesystem::file_size(dir / "metrics.jsonl");
  REQUIRE(written > 0);
  // A file-size limit just past the first row makes the next writes fail as on a full disk.
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &before) == 0);
  rlimit tight = before;
  tight.rlim_cur = written + 16;
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &tight) == 0);
  std::string error;
  try {
    for (int i = 0; i < 10; ++i) logger.train(record);
  } catch (const std::exception& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &before);
  std::signal(SIGXFSZ, previous_handler);
  CHECK_THAT(error, HasSubstr(dir / "metrics.jsonl") && HasSubstr("cannot append a metrics row"));
}

TEST_CASE("undefined validation scores get no TensorBoard point, as metrics.jsonl writes null", "[train]") {
  dpunet::test::TempDir dir;
  {
    dpunet::train::RunLogger logger(dir.path(), /*rank=*/0, "lines", /*tensorboard=*/true);
    logger.open_metrics();
    dpunet::train::ValRecord record;
    record.step = 2;
    record.loss = 0.5;
    record.dice = {0.9, std::nan("")};
    record.iou = {0.8, std::nan("")};
    record.mean_dice = std::nan("");  // no foreground in the masks nor predicted
    record.foreground_dice = std::nan("");
    logger.validation(record);
    record.step = 4;
    record.mean_dice = record.foreground_dice = 0.7;
    logger.validation(record);
    record.step = 6;
    record.loss = std::nan("");  // logits that overflowed: null in metrics.jsonl, no point here
    logger.validation(record);
  }
  std::string events;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "tensorboard")) {
    events += dpunet::read_file(entry.path().string());
  }
  const auto count = [&](const std::string& tag) {
    int n = 0;
    for (size_t at = events.find(tag); at != std::string::npos; at = events.find(tag, at + 1)) ++n;
    return n;
  };
  CHECK(count("val/loss") == 2);
  CHECK(count("val/mean_dice") == 2);  // steps 4 and 6
  CHECK(count("val/foreground_dice") == 2);
  CHECK(count("val/dice_class_0") == 3);
  CHECK(count("val/dice_class_1") == 0);
}

TEST_CASE("validation rows carry the shards' class names where they give them", "[train]") {
  dpunet::test::TempDir dir;
  {
    dpunet::train::RunLogger logger(dir.path(), /*rank=*/0, "lines", /*tensorboard=*/false);
    logger.open_metrics();
    dpunet::train::ValRecord record;
    record.step = 2;
    record.dice = record.iou = {0.9, 0.8};
    logger.validation(record);  // no names given: none written
    logger.set_class_names({"background", "cell"});
    record.step = 4;
    logger.validation(record);
    // A name in another encoding (Latin-1 "tum\xf6r"): written with U+FFFD, not thrown at.
    logger.set_class_names({"background", "tum\xf6r"});
    record.step = 6;
    logger.validation(record);
  }
  const std::vector<nlohmann::json> rows = metrics_rows(dir.path());
  REQUIRE(rows.size() == 3);
  CHECK_FALSE(rows[0].contains("class_names"));
  CHECK(rows[1]["class_names"] == nlohmann::json({"background", "cell"}));
  CHECK(rows[2]["class_names"] == nlohmann::json({"background", "tum\xef\xbf\xbdr"}));
}

TEST_CASE("fp16 training rows carry the steps skipped and the loss scale, others leave them out", "[train]") {
  dpunet::test::TempDir dir;
  {
    dpunet::train::RunLogger logger(dir.path(), /*rank=*/0, "lines", /*tensorboard=*/false);
    logger.open_metrics();
    dpunet::train::TrainRecord record;
    record.step = 10;
    logger.train(record);  // no loss scaler
    record.step = 20;
    record.skipped_steps = 3;
    record.loss_scale = 0.25;
    logger.train(record);
  }
  const std::vector<nlohmann::json> rows = metrics_rows(dir.path());
  REQUIRE(rows.size() == 2);
  CHECK_FALSE(rows[0].contains("skipped_steps"));
  CHECK_FALSE(rows[0].contains("loss_scale"));
  CHECK(rows[1]["skipped_steps"] == 3);
  CHECK(rows[1]["loss_scale"] == 0.25);
}

TEST_CASE("the ETA goes at the run's own pace, validations included, to where this run ends", "[train]") {
  using dpunet::train::remaining_seconds;
  // The first line: no step paced yet, the window's step time stands in.
  CHECK(remaining_seconds(/*step=*/1, /*end_step=*/101, /*paced_from_step=*/1, /*paced_s=*/0, /*step_ms=*/50) ==
        Approx(5.0));
  // 10 steps paced in 2 s (1 s of it a validation): 0.2 s a step, not the 0.1 s a step takes.
  CHECK(remaining_seconds(11, 101, 1, 2.0, 100) == Approx(18.0));
  // A run that stops early (--stop-at-step) ends at its stop; past it, nothing is left.
  CHECK(remaining_seconds(11, 21, 1, 2.0, 100) == Approx(2.0));
  CHECK(remaining_seconds(30, 21, 1, 2.0, 100) == 0.0);
}
