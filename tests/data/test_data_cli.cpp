// `dpunet data ...` end to end: synth, inspect --verify, and bad input reported as one
// clear line that names the file, never as an HDF5 error stack.
#include <catch2/catch.hpp>

#include <filesystem>

#include "support/run_command.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"

using Catch::Matchers::Contains;
using dpunet::test::run_command;

TEST_CASE("dpunet data synth and inspect --verify", "[data][cli]") {
  dpunet::test::TempDir dir;
  const auto synth = run_command(DPUNET_BINARY " data synth --out " + dir.path() +
                                 " --samples 6 --shards 2 --val-samples 2 --size 48 --gzip 2 2>&1");
  INFO(synth.output);
  REQUIRE(synth.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "train-00001.h5"));
  CHECK(std::filesystem::exists(dir / "val-00000.h5"));
  const auto inspect = run_command(DPUNET_BINARY " data inspect '" + dir / "train-*.h5" + "' --verify 2>&1");
  INFO(inspect.output);
  CHECK(inspect.exit_code == 0);
  CHECK_THAT(inspect.output, Contains("6 samples in 2 shards") && Contains("[6, 1, 48, 48] uint8") &&
                                 Contains("gzip") && Contains("class 2 (border)") && Contains("6 samples good, 0 bad"));
}

TEST_CASE("a dataset of more shards than the soft open-file limit opens", "[data][cli]") {
  dpunet::test::TempDir dir;
  const auto synth = run_command(DPUNET_BINARY " data synth --out " + dir.path() +
                                 " --samples 80 --shards 80 --val-samples 2 --size 8 2>&1");
  REQUIRE(synth.exit_code == 0);
  // The soft limit lowered below the shard count; the hard limit stays where it was.
  const auto inspect =
      run_command("bash -c \"ulimit -Sn 48 && " DPUNET_BINARY " data inspect '" + dir / "train-*.h5" + "'\" 2>&1");
  INFO(inspect.output);
  CHECK(inspect.exit_code == 0);
  CHECK_THAT(inspect.output, Contains("80 samples in 80 shards"));
}

TEST_CASE("bad shards are one error line naming the file, not an HDF5 dump", "[data][cli]") {
  dpunet::test::TempDir dir;
  dpunet::test::write_known_shard(dir / "good.h5", 3, 0, 1, 32);
  std::filesystem::copy_file(dir / "good.h5", dir / "cut.h5");
  std::filesystem::resize_file(dir / "cut.h5", std::filesystem::file_size(dir / "good.h5") / 3);
  const auto result = run_command(DPUNET_BINARY " data inspect " + dir / "cut.h5" + " 2>&1");
  INFO(result.output);
  CHECK(result.exit_code != 0);
  CHECK_THAT(result.output, Contains("dpunet: error") && Contains(dir / "cut.h5"));
  CHECK_THAT(result.output, !Contains("HDF5-DIAG") && !Contains("#000"));
  CHECK(std::count(result.output.begin(), result.output.end(), '\n') == 1);
}

TEST_CASE("inspect --verify lists every bad sample and fails", "[data][cli]") {
  dpunet::test::TempDir dir;
  dpunet::test::RawShard spec;
  spec.mask_value = 7;
  dpunet::test::write_raw_shard(dir / "labels.h5", spec);
  const auto result = run_command(DPUNET_BINARY " data inspect " + dir / "labels.h5" + " --verify 2>&1");
  INFO(result.output);
  CHECK(result.exit_code != 0);
  CHECK_THAT(result.output,
             Contains("sample 0: mask label 7") && Contains("sample 1: mask label 7") && Contains("2 bad samples"));
}
