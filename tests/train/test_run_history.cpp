// The run directory's metrics history, made to agree with where a run starts.
#include "support/catch.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "support/temp_dir.h"
#include "train/run_history.h"

TEST_CASE("a resume keeping every metrics row ends the last with its newline, so the next row starts a line",
          "[train]") {
  dpunet::test::TempDir dir;
  const std::string run = dir / "run";
  std::filesystem::create_directories(run);
  const std::string rows = "{\"kind\":\"train\",\"step\":1,\"loss\":1.0}\n{\"kind\":\"train\",\"step\":2,\"loss\":0.5}";
  dpunet::write_file_atomically(run + "/metrics.jsonl", rows);
  const auto history = dpunet::train::set_aside_superseded_history(run, 2);
  CHECK(history.folder.empty());
  CHECK(history.metric_rows == 0);
  CHECK(dpunet::read_file(run + "/metrics.jsonl") == rows + "\n");
}
