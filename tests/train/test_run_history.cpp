// The run directory's metrics history, made to agree with where a run starts.
#include "support/catch.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "config/config.h"
#include "support/temp_dir.h"
#include "train/run_history.h"
#include "train/tensorboard_events.h"

TEST_CASE("a resume keeping every metrics row ends the last with its newline, so the next row starts a line",
          "[train]") {
  dpunet::test::TempDir dir;
  const std::string run = dir / "run";
  std::filesystem::create_directories(run);
  const std::string rows = "{\"kind\":\"train\",\"step\":1,\"loss\":1.0}\n{\"kind\":\"train\",\"step\":2,\"loss\":0.5}";
  dpunet::write_file_atomically(run + "/metrics.jsonl", rows);
  const auto history = dpunet::train::set_aside_superseded_history(run, 2, false, "");
  CHECK(history.folder.empty());
  CHECK(history.metric_rows == 0);
  CHECK(dpunet::read_file(run + "/metrics.jsonl") == rows + "\n");
}

TEST_CASE("a resume with its checkpoint's validation pending sets aside that step's validation a killed run began",
          "[train]") {
  namespace fs = std::filesystem;
  for (const bool pending : {false, true}) {
    INFO("validation pending " << pending);
    dpunet::test::TempDir dir;
    const std::string run = dir / "run";
    fs::create_directories(run + "/tensorboard");
    const std::string train_row = "{\"kind\":\"train\",\"step\":4,\"loss\":0.5}\n";
    const std::string val_row = "{\"kind\":\"val\",\"step\":4,\"loss\":0.6}\n";
    dpunet::write_file_atomically(run + "/metrics.jsonl", train_row + val_row);
    const std::string version = dpunet::train::file_version_record(1.0);
    const std::string train_event = dpunet::train::scalars_record(4, 2.0, {{"train/loss", 0.5f}});
    const std::string val_event = dpunet::train::scalars_record(4, 3.0, {{"val/loss", 0.6f}, {"val/mean_dice", 0.7f}});
    const std::string events = run + "/tensorboard/events.out.tfevents.1.host.1";
    dpunet::write_file_atomically(events, version + train_event + val_event);

    const auto history = dpunet::train::set_aside_superseded_history(run, 4, pending, "");
    if (pending) {
      CHECK(dpunet::read_file(run + "/metrics.jsonl") == train_row);
      CHECK(dpunet::read_file(events) == version + train_event);
      REQUIRE_FALSE(history.folder.empty());
      CHECK(dpunet::read_file(history.folder + "/metrics.jsonl") == val_row);
      CHECK(history.events == 1);
    } else {
      CHECK(history.folder.empty());
      CHECK(dpunet::read_file(run + "/metrics.jsonl") == train_row + val_row);
      CHECK(dpunet::read_file(events) == version + train_event + val_event);
    }
  }
}

TEST_CASE("a run directory's config.yaml that differs from the new run's config is kept, not overwritten", "[train]") {
  dpunet::test::TempDir dir;
  const std::string run = dir / "run";
  std::filesystem::create_directories(run);
  // The file the run was started from, say, with the user's comment.
  const std::string given = "# lr tried last week: 3e-4\noptimizer:\n  lr: 0.001\n";
  dpunet::write_file_atomically(run + "/config.yaml", given);
  const auto same = dpunet::train::set_aside_superseded_history(run, std::nullopt, false, given);
  CHECK(same.folder.empty());
  CHECK_FALSE(same.config);

  const auto differs =
      dpunet::train::set_aside_superseded_history(run, std::nullopt, false, "optimizer:\n  lr: 0.001\n");
  REQUIRE_FALSE(differs.folder.empty());
  CHECK(differs.config);
  CHECK(dpunet::read_file(differs.folder + "/config.yaml") == given);
  CHECK(dpunet::read_file(run + "/config.yaml") == given);  // the caller writes the new one
  CHECK(dpunet::train::describe(differs) ==
        "the earlier config.yaml, which differs from this run's config, is kept in " + differs.folder);

  // A run's own config.yaml (every key, as a run writes it) that a resume with another
  // key replaces is not kept: the checkpoints hold their configs.
  const std::string written = dpunet::config::to_yaml(dpunet::config::parse_config("", "a.yaml"));
  const std::string changed = dpunet::config::to_yaml(dpunet::config::parse_config("", "a.yaml", {"train.steps=2000"}));
  dpunet::write_file_atomically(run + "/config.yaml", written);
  const auto resumed = dpunet::train::set_aside_superseded_history(run, 5, false, changed);
  CHECK_FALSE(resumed.config);
  CHECK(resumed.folder.empty());

  // With history moved, the config goes along, whoever wrote it; the line says so.
  dpunet::write_file_atomically(run + "/metrics.jsonl", "{\"kind\":\"train\",\"step\":1,\"loss\":1.0}\n");
  const auto both = dpunet::train::set_aside_superseded_history(run, std::nullopt, false, "other: 1\n");
  CHECK(both.config);
  CHECK_THAT(dpunet::train::describe(both), Catch::Matchers::EndsWith(", with the earlier config.yaml"));
}
