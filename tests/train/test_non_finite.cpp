// NaN and infinity: shards refuse to hold them, a float shard written by another tool
// that holds one fails at the sample that does, and a loss that is no longer finite
// stops every rank before its weights are validated or saved, as do weights that a
// gradient spoiled while the loss stayed finite.
#include <hdf5.h>
#include "support/catch.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/store.h"
#include "config/config.h"
#include "data/dataset.h"
#include "data/normalize.h"
#include "data/shard_writer.h"
#include "support/train_fixture.h"
#include "train/setup.h"

namespace {

dpunet::data::ShardHeader float_header(int64_t samples, int64_t size) {
  dpunet::data::ShardHeader h;
  h.samples = samples;
  h.channels = 1;
  h.height = h.width = size;
  h.pixel_type = dpunet::data::PixelType::kFloat32;
  h.n_classes = 3;
  return h;
}

// A float32 shard of `samples` images filled with `value`, masks cycling over 3 classes.
void write_float_shard(const std::string& path, int64_t samples, int64_t size, float value) {
  dpunet::data::ShardWriter writer(path, float_header(samples, size));
  std::vector<float> image(static_cast<size_t>(size * size), value);
  std::vector<uint8_t> mask(image.size());
  for (size_t p = 0; p < mask.size(); ++p) mask[p] = static_cast<uint8_t>(p % 3);
  for (int64_t i = 0; i < samples; ++i) writer.write(i, image.data(), mask.data());
  writer.finish();
}

// Sets one value of sample `sample`'s image in place, as another tool could have written it.
void poke(const std::string& path, int64_t sample, int64_t y, int64_t x, float value) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
  const hid_t space = H5Dget_space(images);
  const hsize_t start[4] = {static_cast<hsize_t>(sample), 0, static_cast<hsize_t>(y), static_cast<hsize_t>(x)};
  const hsize_t count[4] = {1, 1, 1, 1};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  const hid_t one = H5Screate_simple(4, count, nullptr);
  REQUIRE(H5Dwrite(images, H5T_NATIVE_FLOAT, one, space, H5P_DEFAULT, &value) >= 0);
  H5Sclose(one);
  H5Sclose(space);
  H5Dclose(images);
  H5Fclose(file);
}

}  // namespace

TEST_CASE("a shard refuses NaN and infinite pixels, naming the sample and pixel", "[data]") {
  dpunet::test::TempDir dir;
  dpunet::data::ShardWriter writer(dir / "a.h5", float_header(2, 4));
  std::vector<float> image(16, 1.0f);
  const std::vector<uint8_t> mask(16, 0);
  writer.write(0, image.data(), mask.data());
  image[6] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(writer.write(1, image.data(), mask.data()),
                    HasSubstr("a.h5: sample 1: image channel 0, pixel (1, 2) is nan"));
}

TEST_CASE("a NaN in a float shard written elsewhere fails the sample that holds it", "[data]") {
  dpunet::test::TempDir dir;
  write_float_shard(dir / "f.h5", 3, 8, 0.5f);
  poke(dir / "f.h5", 2, 5, 1, std::numeric_limits<float>::infinity());
  const dpunet::data::Dataset dataset(dir / "f.h5");
  std::vector<unsigned char> scratch;
  const dpunet::data::Normalizer none(dpunet::data::Normalization::kNone);
  CHECK(dpunet::data::load_sample(dataset, 1, none, scratch).image[0] == 0.5f);
  CHECK_THROWS_WITH(dpunet::data::load_sample(dataset, 2, none, scratch),
                    HasSubstr(dir / "f.h5") && HasSubstr("sample 2 of 'images': channel 0, pixel (5, 1) is inf"));
  const auto inspected = dpunet::test::run_command(DPUNET_BINARY " data inspect --verify " + dir / "f.h5" + " 2>&1");
  CHECK(inspected.exit_code != 0);
  CHECK_THAT(inspected.output, HasSubstr("pixel (5, 1) is inf") && HasSubstr("2 samples good, 1 bad"));
}

TEST_CASE("a loss that is no longer finite stops every rank before anything is saved", "[train][e2e]") {
  dpunet::test::TrainFixture f;
  // Finite pixels too large for float32 arithmetic: the first convolutions overflow.
  std::filesystem::create_directories(f.dir() / "huge");
  write_float_shard(f.dir() / "huge/train-0.h5", 8, 48, 3e38f);
  const std::string config =
      f.write_config("data: {train: '" + f.dir() / "huge/train-*.h5" + "', val: '', normalization: none}\n");
  const auto run = f.train(2, config);
  INFO(run.output);
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, HasSubstr("the training loss was not finite (NaN or inf) in"));
  // Every rank knew, so the job ends without an abort: one message, no MPI report.
  CHECK_THAT(run.output, !HasSubstr("timed out") && !HasSubstr("done:") && !HasSubstr("MPI_ABORT") &&
                             !HasSubstr("ORTE_ERROR_LOG") && !HasSubstr("(rank 1 on"));
  CHECK_FALSE(std::filesystem::exists(f.run_dir() + "/DONE"));
  // Without a log line at every step, the check before the first checkpoint finds it.
  const auto quiet = f.train(2, config + " --set logging.every_steps=100 --set run.dir=" + f.dir() / "quiet");
  INFO(quiet.output);
  CHECK(quiet.exit_code != 0);
  CHECK_THAT(quiet.output, HasSubstr("not finite (NaN or inf) in 4 rank-step(s) of steps 1-2"));
  CHECK_FALSE(std::filesystem::exists(f.dir() / "quiet/checkpoints/step-00000002.ckpt"));
  CHECK_FALSE(std::filesystem::exists(f.dir() / "quiet/DONE"));
}

TEST_CASE("weights that a gradient spoiled while the loss stayed finite are neither validated nor saved",
          "[train][e2e]") {
  dpunet::test::TrainFixture f;
  const std::string config = f.write_config("checkpoint: {every_steps: 1, keep_last: 1}\n");
  const auto first = f.train(1, config + " --set train.steps=2 --set schedule.warmup_steps=1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  // AdamW's first moments near float32's largest value over second moments of zero: the
  // next update overflows to inf, after a loss computed with finite weights.
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  const std::string path = store.path_for_step(2);
  {
    const dpunet::checkpoint::LoadedCheckpoint loaded(path);
    const auto parsed = dpunet::config::parse_config(loaded.state().config_yaml, path);
    auto net = dpunet::train::build_model(parsed, nullptr);
    loaded.restore_model(*net);
    const auto optimizer = dpunet::train::build_optimizer(parsed, net->parameters());
    loaded.restore_optimizer(*optimizer);
    int64_t changed = 0;
    for (auto& entry : optimizer->state()) {
      auto& adamw = static_cast<torch::optim::AdamWParamState&>(*entry.second);
      adamw.exp_avg().fill_(3e38);
      adamw.exp_avg_sq().zero_();
      ++changed;
    }
    REQUIRE(changed > 0);
    dpunet::checkpoint::save_checkpoint(path, *net, *optimizer, loaded.state());
  }
  const auto resumed = f.train(2, config + " --resume auto --set train.steps=4");
  INFO(resumed.output);
  CHECK(resumed.exit_code != 0);
  CHECK_THAT(resumed.output, HasSubstr("the weights hold NaN or infinite values after step 3's update, though every "
                                       "loss up to it was finite") &&
                                 HasSubstr("\n  inc.") && HasSubstr(" more\n") &&
                                 HasSubstr("Checkpoints written before are unaffected"));
  CHECK_THAT(resumed.output, !HasSubstr("MPI_ABORT") && !HasSubstr("validation step"));
  // Neither written nor pruning the one before it.
  CHECK_FALSE(std::filesystem::exists(store.path_for_step(3)));
  CHECK(dpunet::checkpoint::is_valid_checkpoint(path));
}
