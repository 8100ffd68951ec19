// Acceptance: configs/quickstart.yaml on 2 CPU ranks learns the synthetic task, as the
// README promises: validation foreground Dice >= 0.85 and a falling loss.
#include <nlohmann/json.hpp>
#include "support/catch.h"

#include <fstream>

#include "data/image_io.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

TEST_CASE("the quickstart reaches a foreground Dice of 0.85 on 2 CPU ranks", "[train][e2e][quickstart]") {
  dpunet::test::TempDir dir;
  const auto synth = dpunet::test::run_command(DPUNET_BINARY " data synth --out " + dir / "synth" +
                                               " --samples 256 --shards 4 --val-samples 32 --size 128 2>&1");
  REQUIRE(synth.exit_code == 0);
  const auto run =
      dpunet::test::run_command(std::string("timeout 540 " DPUNET_MPI_LAUNCHER " 2 " DPUNET_BINARY
                                            " train " DPUNET_SOURCE_DIR_SH "/configs/quickstart.yaml") +
                                " --set run.dir=" + dir / "run" + " --set 'data.train=" + dir / "synth/train-*.h5" +
                                "' --set 'data.val=" + dir / "synth/val-*.h5" + "' --set logging.progress=lines 2>&1");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  std::ifstream metrics(dir / "run/metrics.jsonl");
  std::vector<double> losses;
  double last_dice = -1;
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] == "train") losses.push_back(row["loss"].get<double>());
    if (row["kind"] == "val") last_dice = row["foreground_dice"].is_null() ? -1 : row["foreground_dice"].get<double>();
  }
  REQUIRE(losses.size() >= 3);
  CHECK(losses.back() < 0.5 * losses.front());
  CHECK(last_dice >= 0.85);

  const auto plot = dpunet::test::run_command(DPUNET_BINARY " plot " + dir / "run" + " 2>&1");
  INFO(plot.output);
  REQUIRE(plot.exit_code == 0);
  const dpunet::data::Image curves = dpunet::data::read_image(dir / "run/curves.png");
  CHECK(curves.width == 1000);
  CHECK(curves.height == 900);
}
