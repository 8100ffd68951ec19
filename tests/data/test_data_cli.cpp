// `dpunet data ...` end to end: synth, inspect --verify, and bad input reported as one
// clear line that names the file, never as an HDF5 error stack.
#include "support/catch.h"

#include <filesystem>
#include <fstream>

#include "data/image_io.h"
#include "support/run_command.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"

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
  CHECK_THAT(inspect.output, HasSubstr("6 samples in 2 shards") && HasSubstr("[6, 1, 48, 48] uint8") &&
                                 HasSubstr("gzip") && HasSubstr("class 2 (border)") &&
                                 HasSubstr("6 samples good, 0 bad"));
  // At most --max-samples, spread over the set: 6 samples and 4 asked for, every other one.
  const auto some = run_command(DPUNET_BINARY " data inspect '" + dir / "train-*.h5" + "' --max-samples 4 2>&1");
  INFO(some.output);
  CHECK_THAT(some.output, HasSubstr("statistics over 3 samples"));
}

TEST_CASE("a misspelt command is named, with the command meant and those there are", "[data][cli]") {
  const auto top = run_command(DPUNET_BINARY " trian configs/quickstart.yaml 2>&1");
  CHECK(top.exit_code == 106);  // a command line that does not parse
  CHECK_THAT(top.output, HasSubstr("'trian' is not a command of dpunet (did you mean 'train'?)") &&
                             HasSubstr("predict") && !HasSubstr("A subcommand is required"));
  const auto nested = run_command(DPUNET_BINARY " data imprt --images x 2>&1");
  CHECK(nested.exit_code == 106);
  CHECK_THAT(nested.output, HasSubstr("'imprt' is not a command of dpunet data (did you mean 'import'?)"));
  const auto far = run_command(DPUNET_BINARY " frobnicate 2>&1");
  CHECK_THAT(far.output, HasSubstr("'frobnicate' is not a command of dpunet;") && !HasSubstr("did you mean"));
  const auto bare = run_command(DPUNET_BINARY " 2>&1");
  CHECK(bare.exit_code == 106);
  CHECK_THAT(bare.output, HasSubstr("Usage") && HasSubstr("train"));
}

TEST_CASE("a command line every copy of a launch got alike is said wrong once, by the first", "[data][cli]") {
  // As mpirun -np 2 starts them: each copy sees the same arguments.
  for (const std::string rank : {"0", "1"}) {
    const std::string copy = "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=" + rank + " " DPUNET_BINARY;
    const auto option = run_command(copy + " bench model --size 0 2>&1");
    INFO(option.output);
    CHECK(option.exit_code == 105);  // CLI11's code for a value that fails its check
    const auto command = run_command(copy + " trian 2>&1");
    CHECK(command.exit_code == 106);
    if (rank == "0") {
      CHECK_THAT(option.output, HasSubstr("--size: must be a whole number of at least 1, got 0"));
      CHECK_THAT(command.output, HasSubstr("'trian' is not a command of dpunet"));
    } else {
      CHECK(option.output.empty());
      CHECK(command.output.empty());
    }
  }
}

TEST_CASE("data synth refuses a negative seed, which would wrap to another", "[data][cli]") {
  dpunet::test::TempDir dir;
  const auto negative = run_command(DPUNET_BINARY " data synth --out " + dir.path() + " --seed -1 2>&1");
  CHECK(negative.exit_code != 0);
  CHECK_THAT(negative.output, HasSubstr("--seed"));
  CHECK_FALSE(std::filesystem::exists(dir / "train-00000.h5"));
}

TEST_CASE("inspect --verify lists a shard that cannot be opened or disagrees, and reads the others", "[data][cli]") {
  dpunet::test::TempDir dir;
  const auto synth = run_command(DPUNET_BINARY " data synth --out " + dir.path() +
                                 " --samples 6 --shards 3 --val-samples 0 --size 32 2>&1");
  REQUIRE(synth.exit_code == 0);
  std::filesystem::resize_file(dir / "train-00001.h5", 100);  // cut short
  // A stray shard of another dataset (16x16 images) among them.
  const auto other = run_command(DPUNET_BINARY " data synth --out " + dir / "other" +
                                 " --samples 2 --shards 1 --val-samples 0 --size 16 2>&1");
  REQUIRE(other.exit_code == 0);
  std::filesystem::copy_file(dir / "other/train-00000.h5", dir / "train-00009.h5");
  const auto inspect = run_command(DPUNET_BINARY " data inspect '" + dir / "train-*.h5" + "' --verify 2>&1");
  INFO(inspect.output);
  CHECK(inspect.exit_code != 0);
  CHECK_THAT(inspect.output,
             HasSubstr("BAD " + dir / "train-00001.h5") &&
                 HasSubstr("BAD " + dir / "train-00009.h5: C=1 H=16 W=16 uint8 n_classes=3, unlike the 2 shard(s) of "
                                          "C=1 H=32 W=32") &&
                 HasSubstr("4 samples in 2 shards") &&
                 HasSubstr("4 samples good, 0 bad; 2 shard(s) could not be opened or disagree with the others") &&
                 HasSubstr("0 bad samples and 2 shard(s) that could not be opened or disagree with the others "
                           "(listed above)"));
  // An index that lists a missing shard: listed as bad too, and the rest read.
  std::ofstream(dir / "list.txt") << "train-00000.h5\ngone.h5\ntrain-00002.h5\n";
  const auto indexed = run_command(DPUNET_BINARY " data inspect " + dir / "list.txt" + " --verify 2>&1");
  INFO(indexed.output);
  CHECK(indexed.exit_code != 0);
  CHECK_THAT(indexed.output, HasSubstr("BAD " + dir / "gone.h5: no such file (listed in " + dir / "list.txt)") &&
                                 HasSubstr("4 samples good, 0 bad"));
}

TEST_CASE("data import --folds prints each fold's shards and the keys that train it, in tiles too", "[data][cli]") {
  dpunet::test::TempDir dir;
  std::filesystem::create_directories(dir / "images");
  std::filesystem::create_directories(dir / "masks");
  dpunet::data::Image image, mask;
  image.height = image.width = mask.height = mask.width = 8;
  image.channels = mask.channels = 1;
  image.values.assign(64, 9);
  mask.values.assign(64, 0);
  mask.values[3] = 255;
  for (int i = 0; i < 4; ++i) {
    dpunet::data::write_png(dir / ("images/" + std::to_string(i) + ".png"), image);
    dpunet::data::write_png(dir / ("masks/" + std::to_string(i) + ".png"), mask);
  }
  // --out relative, with a trailing slash: the printed globs are absolute and clean.
  const std::string import =
      "cd " + dir.path() + " && " DPUNET_BINARY " data import --images images --masks masks --out out/";
  const auto folds = run_command(import + " --folds 2 2>&1");
  INFO(folds.output);
  REQUIRE(folds.exit_code == 0);
  CHECK_THAT(folds.output,
             HasSubstr("imported 4 samples in 2 folds") &&
                 HasSubstr("fold1: 2 samples in 1 shard(s); train it with --set 'data.train=" + dir / "out" +
                           "/fold[!1]-*.h5' --set 'data.val=" + dir / "out" + "/fold1-*.h5'"));
  const auto both = run_command(import + " --folds 2 --val-fraction 0.5 --overwrite 2>&1");
  CHECK(both.exit_code != 0);
  CHECK_THAT(both.output, HasSubstr("--val-fraction excludes --folds"));
  // Cut into 4x4 tiles: four of each 8x8 image, counted as samples, the images said.
  const auto tiles = run_command(import + " --folds 2 --tile 4 --overwrite 2>&1");
  INFO(tiles.output);
  REQUIRE(tiles.exit_code == 0);
  CHECK_THAT(tiles.output, HasSubstr("imported 16 samples in 2 folds (4x4 tiles of 4 images)") &&
                               HasSubstr("fold1: 8 samples in 1 shard(s)"));
  const auto none = run_command(import + " --tile 0 --overwrite 2>&1");
  CHECK(none.exit_code != 0);
  CHECK_THAT(none.output, HasSubstr("--tile"));
}

TEST_CASE("data synth into a folder holding shards refuses, or replaces them all with --overwrite", "[data][cli]") {
  dpunet::test::TempDir dir;
  const std::string synth = DPUNET_BINARY " data synth --out " + dir.path() + " --size 16 --val-samples 2 ";
  REQUIRE(run_command(synth + "--samples 8 --shards 4 2>&1").exit_code == 0);
  const auto again = run_command(synth + "--samples 4 --shards 2 2>&1");
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.output,
             HasSubstr(dir / "train-00000.h5") && HasSubstr("already holds 5 shard(s)") && HasSubstr("--overwrite"));
  CHECK(std::filesystem::exists(dir / "train-00003.h5"));  // nothing touched
  const auto replaced = run_command(synth + "--samples 4 --shards 2 --overwrite 2>&1");
  INFO(replaced.output);
  REQUIRE(replaced.exit_code == 0);
  // The old dataset's higher-numbered shards would otherwise join the new one's glob.
  CHECK_FALSE(std::filesystem::exists(dir / "train-00002.h5"));
  const auto inspect = run_command(DPUNET_BINARY " data inspect '" + dir / "train-*.h5" + "' 2>&1");
  CHECK_THAT(inspect.output, HasSubstr("4 samples in 2 shards"));
}

TEST_CASE("data synth --size takes whole positive numbers only", "[data][cli]") {
  dpunet::test::TempDir dir;
  for (const std::string size : {"128x128x3", "1e3", "0", "64x", "x64"}) {
    const auto synth = run_command(DPUNET_BINARY " data synth --out " + dir.path() + " --size " + size + " 2>&1");
    INFO(size);
    CHECK(synth.exit_code != 0);
    CHECK_THAT(synth.output, HasSubstr("--size must be S or HxW") && HasSubstr("'" + size + "'"));
  }
}

TEST_CASE("data command numbers are checked by the option that takes them", "[data][cli]") {
  dpunet::test::TempDir dir;
  for (const std::string option :
       {"--val-samples -1", "--samples 0", "--gzip 10", "--classes 4", "--size 4", "--channels 5000", "--out ''"}) {
    const auto synth = run_command(DPUNET_BINARY " data synth --out " + dir.path() + " " + option + " 2>&1");
    INFO(option);
    CHECK(synth.exit_code != 0);
    CHECK_THAT(synth.output, HasSubstr(option.substr(0, option.find(' '))));
  }
  CHECK_FALSE(std::filesystem::exists(dir / "train-00000.h5"));
  // Shards hold a sample at least: the default count fits fewer samples, one given must.
  const auto more_shards =
      run_command(DPUNET_BINARY " data synth --out " + dir.path() + " --samples 1 --shards 3 --size 16 2>&1");
  CHECK(more_shards.exit_code != 0);
  CHECK_THAT(more_shards.output, HasSubstr("--shards 3 is more than --samples 1"));
  const auto one = run_command(DPUNET_BINARY " data synth --out " + dir / "one" + " --samples 1 --size 16 2>&1");
  INFO(one.output);
  CHECK(one.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "one/train-00000.h5"));
  CHECK_FALSE(std::filesystem::exists(dir / "one/train-00001.h5"));
  const auto seed = run_command(DPUNET_BINARY " data import --images " + dir.path() + " --masks " + dir.path() +
                                " --out " + dir / "out" + " --seed -1 2>&1");
  CHECK(seed.exit_code != 0);
  CHECK_THAT(seed.output, HasSubstr("--seed") && HasSubstr("must be a whole number from 0 to 2^64-1, got -1"));
  // The whole unsigned range is a seed.
  const auto large = run_command(DPUNET_BINARY " data synth --out " + dir / "large" +
                                 " --samples 1 --size 16 --seed 18446744073709551615 2>&1");
  INFO(large.output);
  CHECK(large.exit_code == 0);
  const auto nan = run_command(DPUNET_BINARY " data import --images " + dir.path() + " --masks " + dir.path() +
                               " --out " + dir / "out" + " --val-fraction nan 2>&1");
  CHECK(nan.exit_code != 0);
  CHECK_THAT(nan.output, HasSubstr("--val-fraction") && HasSubstr("must be a number from 0 to below 1, got nan"));
  const auto unnamed = run_command(DPUNET_BINARY " data import --images " + dir.path() + " --masks " + dir.path() +
                                   " --mask-suffix _m --out " + dir / "out" + " --class-names bg,cell, 2>&1");
  CHECK(unnamed.exit_code != 0);
  CHECK_THAT(unnamed.output, HasSubstr("--class-names bg,cell,: an empty name (class 2)"));
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
  CHECK_THAT(inspect.output, HasSubstr("80 samples in 80 shards"));
}

TEST_CASE("bad shards are one error line naming the file, not an HDF5 dump", "[data][cli]") {
  dpunet::test::TempDir dir;
  dpunet::test::write_known_shard(dir / "good.h5", 3, 0, 1, 32);
  std::filesystem::copy_file(dir / "good.h5", dir / "cut.h5");
  std::filesystem::resize_file(dir / "cut.h5", std::filesystem::file_size(dir / "good.h5") / 3);
  const auto result = run_command(DPUNET_BINARY " data inspect " + dir / "cut.h5" + " 2>&1");
  INFO(result.output);
  CHECK(result.exit_code != 0);
  CHECK_THAT(result.output, HasSubstr("dpunet: error") && HasSubstr(dir / "cut.h5"));
  CHECK_THAT(result.output, !HasSubstr("HDF5-DIAG") && !HasSubstr("#000"));
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
  CHECK_THAT(result.output, HasSubstr("sample 0: pixel (0, 0): mask label 7") &&
                                HasSubstr("sample 1: pixel (0, 0): mask label 7") && HasSubstr("2 bad samples"));
}
