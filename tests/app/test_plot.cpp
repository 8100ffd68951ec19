// `dpunet plot` on metrics that a real run can leave behind: a diverged loss (written as
// null) and a last line cut short by a killed process.
#include "support/catch.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "data/image_io.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

TEST_CASE("plot draws what it can and says which lines it skipped", "[app]") {
  dpunet::test::TempDir dir;
  dpunet::write_file_atomically(dir / "metrics.jsonl",
                                "{\"kind\":\"train\",\"step\":1,\"loss\":1.5,\"samples_per_s\":10}\n"
                                "{\"kind\":\"train\",\"step\":2,\"loss\":null,\"samples_per_s\":10}\n"
                                "{\"kind\":\"val\",\"step\":2,\"dice\":[0.9,null],\"foreground_dice\":null}\n"
                                "{\"kind\":\"train\",\"step\":3,\"lo");
  const auto plot = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1");
  INFO(plot.output);
  REQUIRE(plot.exit_code == 0);
  CHECK_THAT(plot.output, HasSubstr("skipped 1 line(s)") && HasSubstr("line 4"));
  CHECK(dpunet::data::read_image(dir / "curves.png").width == 1000);
  const auto missing = dpunet::test::run_command(DPUNET_BINARY " plot " + dir / "nothing" + " 2>&1");
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, HasSubstr("cannot read"));
}

TEST_CASE("plot writes only .png files and says when there is nothing to plot", "[app]") {
  dpunet::test::TempDir dir;
  const std::string metrics = "{\"kind\":\"train\",\"step\":1,\"loss\":1.5,\"samples_per_s\":10}\n";
  dpunet::write_file_atomically(dir / "metrics.jsonl", metrics);
  // --out naming the metrics file (or a checkpoint) would replace it with a picture.
  const auto over_metrics =
      dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " --out " + dir / "metrics.jsonl" + " 2>&1");
  CHECK(over_metrics.exit_code != 0);
  CHECK_THAT(over_metrics.output, HasSubstr("does not end in .png"));
  CHECK(dpunet::read_file(dir / "metrics.jsonl") == metrics);
  const auto upper = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " --out " + dir / "C.PNG 2>&1");
  CHECK(upper.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "C.PNG"));
  const auto dot_name = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " --out " + dir / ".png 2>&1");
  CHECK(dot_name.exit_code == 0);
  CHECK(std::filesystem::exists(dir / ".png"));
  // Another .png (an input image, a predicted mask) is replaced only with --overwrite; the
  // run's own curves.png at each plot.
  dpunet::write_file_atomically(dir / "img.png", "an image");
  const auto over_image =
      dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " --out " + dir / "img.png 2>&1");
  CHECK(over_image.exit_code != 0);
  CHECK_THAT(over_image.output, HasSubstr("img.png exists; give --overwrite to replace it"));
  CHECK(dpunet::read_file(dir / "img.png") == "an image");
  CHECK(dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " --out " + dir / "img.png --overwrite 2>&1")
            .exit_code == 0);
  CHECK(dpunet::read_file(dir / "img.png") != "an image");
  for (int i = 0; i < 2; ++i)
    CHECK(dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1").exit_code == 0);
  dpunet::write_file_atomically(dir / "metrics.jsonl", "");
  const auto empty = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1");
  CHECK(empty.exit_code != 0);
  CHECK_THAT(empty.output, HasSubstr("no metrics records (empty)"));
  dpunet::write_file_atomically(dir / "metrics.jsonl", "{\"kind\":\"train\",\"step\":1,\"lo\n");
  const auto cut = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1");
  CHECK(cut.exit_code != 0);
  CHECK_THAT(cut.output, HasSubstr("no metrics records (no line is one: JSON with kind, step"));
  // JSON, but no record: said alike.
  dpunet::write_file_atomically(dir / "metrics.jsonl", "{\"kind\":\"val\",\"step\":1}\n");
  const auto fields = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1");
  CHECK(fields.exit_code != 0);
  CHECK_THAT(fields.output, HasSubstr("no metrics records (no line is one"));
  std::filesystem::create_directories(dir / "folder/metrics.jsonl");
  const auto folder = dpunet::test::run_command(DPUNET_BINARY " plot " + dir / "folder" + " 2>&1");
  CHECK(folder.exit_code != 0);
  CHECK_THAT(folder.output, HasSubstr("metrics.jsonl: is a folder, not the run's metrics file"));
  // An empty folder argument (an unset variable) is not the filesystem's root.
  const auto unset = dpunet::test::run_command(DPUNET_BINARY " plot '' 2>&1");
  CHECK(unset.exit_code != 0);
  CHECK_THAT(unset.output, HasSubstr("plot: an empty run directory"));
}

TEST_CASE("plot draws curves over extreme and tiny ranges", "[app]") {
  // The loss curve's colour: the legend alone draws a short stroke of it, a curve more.
  const auto curve_pixels = [](const dpunet::data::Image& image) {
    int64_t count = 0;
    for (size_t p = 0; p + 2 < image.values.size(); p += 3) {
      count += image.values[p] == 31 && image.values[p + 1] == 119 && image.values[p + 2] == 180;
    }
    return count;
  };
  for (const auto& [low, high] : {std::pair<const char*, const char*>{"-1e308", "1e308"}, {"1e-300", "2e-300"}}) {
    CAPTURE(low, high);
    dpunet::test::TempDir dir;
    std::string rows;
    for (int step = 1; step <= 40; ++step) {
      rows += "{\"kind\":\"train\",\"step\":" + std::to_string(step) + ",\"loss\":" + (step % 2 ? low : high) +
              ",\"samples_per_s\":10}\n";
    }
    dpunet::write_file_atomically(dir / "metrics.jsonl", rows);
    const auto plot = dpunet::test::run_command(DPUNET_BINARY " plot " + dir.path() + " 2>&1");
    INFO(plot.output);
    REQUIRE(plot.exit_code == 0);
    const auto image = dpunet::data::read_image(dir / "curves.png");
    REQUIRE(image.channels == 3);
    CHECK(curve_pixels(image) > 2000);  // the zig-zag spans the panel's height 39 times
  }
}
