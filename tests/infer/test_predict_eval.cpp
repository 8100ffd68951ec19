// `dpunet predict --eval`: masks found by suffix and mapped to classes, sparsely
// labelled shards scored on their labelled pixels only, and the ignore label's rules.
#include <torch/torch.h>
#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "common/remove_tree.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/import.h"
#include "data/shard_writer.h"
#include "infer/input_rows.h"
#include "infer/inputs.h"
#include "infer/sliding_window.h"
#include "support/image_files.h"
#include "support/prediction_fixture.h"
#include "train/metrics.h"

using dpunet::test::read_mask;
using dpunet::test::run_command;
using dpunet::test::TrainedModel;
using dpunet::test::TrainFixture;

TEST_CASE("predict --eval: masks found by suffix, values mapped to classes, none found is an error", "[infer][e2e]") {
  TrainedModel t;
  std::filesystem::create_directories(t.f.dir() / "in/images");
  std::filesystem::create_directories(t.f.dir() / "in/masks");
  dpunet::data::Image image, mask;
  image.height = mask.height = image.width = mask.width = 40;
  image.channels = mask.channels = 1;
  for (int64_t p = 0; p < 40 * 40; ++p) {
    image.values.push_back(static_cast<uint16_t>((p * 7) % 200));
    mask.values.push_back(static_cast<uint16_t>(p % 40 < 20 ? 0 : 255));
  }
  dpunet::data::write_png(t.f.dir() / "in/images/a.png", image);
  dpunet::data::write_png(t.f.dir() / "in/masks/a_mask.PNG", mask);
  const std::string predict = DPUNET_BINARY " predict " + t.f.dir() / "in/images" + " --checkpoint " + t.checkpoint +
                              " --no-png --eval --overwrite --out " + t.f.dir() / "out";
  const auto unmapped = run_command(predict + " --masks " + t.f.dir() / "in/masks" + " --mask-suffix _mask 2>&1");
  CHECK(unmapped.exit_code != 0);
  CHECK_THAT(unmapped.output, HasSubstr("a_mask.PNG") && HasSubstr("mask value 255") && HasSubstr("--mask-map"));
  // Colours for a grey mask: grey 255 would be taken for #0000ff.
  const auto colours = run_command(predict + " --masks " + t.f.dir() / "in/masks" +
                                   " --mask-suffix _mask --mask-map '#000000=0,#0000ff=1' 2>&1");
  CHECK(colours.exit_code != 0);
  CHECK_THAT(colours.output, HasSubstr("a_mask.PNG: the mask mapping names colours (#rrggbb), but this mask is grey"));
  const auto mapped =
      run_command(predict + " --masks " + t.f.dir() / "in/masks" + " --mask-suffix _mask --mask-map 0=0,255=1 2>&1");
  INFO(mapped.output);
  CHECK(mapped.exit_code == 0);
  const auto eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "out/eval.json"));
  CHECK(eval["images"] == 1);
  CHECK(eval["aggregation"] == "pooled");
  // The scores are the prediction's against the mapped mask: 0 is class 0, 255 class 1.
  const int64_t classes = static_cast<int64_t>(eval["dice"].size());
  REQUIRE(classes >= 2);
  const torch::Tensor truth = (torch::arange(40) >= 20).to(torch::kLong).expand({40, 40}).unsqueeze(0);
  const torch::Tensor predicted = read_mask(t.f.dir() / "out/predictions.h5", "a").to(torch::kLong);
  dpunet::train::ConfusionCounts expected(classes, -1);
  expected.add(torch::one_hot(predicted, classes).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat), truth);
  const std::vector<double> dice = expected.dice();
  for (int64_t k = 0; k < classes; ++k) {
    INFO("class " << k);
    if (std::isnan(dice[k])) {
      CHECK(eval["dice"][k].is_null());
    } else {
      CHECK(eval["dice"][k].get<double>() == Approx(dice[k]));
    }
  }
  // Masks are read only to be evaluated: given without --eval they would be ignored.
  const std::string plain = DPUNET_BINARY " predict " + t.f.dir() / "in/images" + " --checkpoint " + t.checkpoint +
                            " --no-png --out " + t.f.dir() / "plain --masks " + t.f.dir() / "in/masks 2>&1";
  const auto without_eval = run_command(plain);
  CHECK(without_eval.exit_code != 0);
  CHECK_THAT(without_eval.output, HasSubstr("--masks requires --eval"));
  const auto unmatched = run_command(predict + " --masks " + t.f.dir() / "in/masks 2>&1");  // no suffix given
  CHECK(unmatched.exit_code != 0);
  CHECK_THAT(unmatched.output, HasSubstr("a.png: no mask named a.png/.tif/.tiff") &&
                                   HasSubstr("there is a_mask.PNG: --mask-suffix _mask?"));
  const auto no_masks = run_command(predict + " 2>&1");
  CHECK(no_masks.exit_code != 0);
  CHECK_THAT(no_masks.output, HasSubstr("give --masks DIR"));
  // One image without its mask: named before anything is predicted, not left out of the score.
  dpunet::data::write_png(t.f.dir() / "in/images/b.png", image);
  REQUIRE(dpunet::remove_tree(t.f.dir() / "out"));
  const auto one_missing =
      run_command(predict + " --masks " + t.f.dir() / "in/masks" + " --mask-suffix _mask --mask-map 0=0,255=1 2>&1");
  CHECK(one_missing.exit_code != 0);
  CHECK_THAT(one_missing.output,
             HasSubstr("in/images/b.png: no mask named b_mask") && HasSubstr("--eval scores every image"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "out/predictions.h5"));
  std::filesystem::remove(t.f.dir() / "in/images/b.png");
  // Two images whose outputs would share a name.
  dpunet::data::write_png(t.f.dir() / "in/images/a.PNG", image);
  const auto twins = run_command(predict + " 2>&1");
  CHECK(twins.exit_code != 0);
  CHECK_THAT(twins.output, HasSubstr("have the same name"));
  std::filesystem::remove(t.f.dir() / "in/images/a.PNG");
  // Nor by letter case alone: on an output folder that ignores it (SMB, exFAT) A_mask.png
  // would replace a_mask.png.
  dpunet::data::write_png(t.f.dir() / "in/images/A.png", image);
  const auto cased = run_command(predict + " 2>&1");
  CHECK(cased.exit_code != 0);
  CHECK_THAT(cased.output, HasSubstr("in/images/A.png and ") && HasSubstr("in/images/a.png have the same name (letter "
                                                                          "case aside)"));
  std::filesystem::remove(t.f.dir() / "in/images/A.png");
  // Images and shards in one folder: which was meant is not guessed.
  dpunet::write_file_atomically(t.f.dir() / "in/images/predictions.h5", "x");
  const auto mixed = run_command(predict + " 2>&1");
  CHECK(mixed.exit_code != 0);
  CHECK_THAT(mixed.output, HasSubstr("holds both images and .h5 files"));
}

namespace {
// Copies the shards matching `from` (a glob in a test folder) to folder `to`, each sample's
// mask left unlabelled (255) where a seeded coin says so: sparse annotation.
void write_sparse_copy(const std::string& from, const std::string& to, double unlabelled_share) {
  std::filesystem::create_directories(to);
  const dpunet::data::Dataset dataset(from);
  for (const auto& shard : dataset.shards()) {
    dpunet::data::ShardHeader header = shard->header();
    header.ignore_label = 255;
    dpunet::data::ShardWriter writer(to + "/" + std::filesystem::path(shard->path()).filename().string(), header);
    std::vector<unsigned char> image(header.image_values() * dpunet::data::pixel_type_bytes(header.pixel_type));
    std::vector<uint8_t> mask(header.pixels());
    for (int64_t i = 0; i < header.samples; ++i) {
      shard->read(i, image.data(), mask.data());
      const torch::Tensor coin = torch::rand({header.pixels()}, torch::Generator(at::detail::createCPUGenerator(i)));
      for (int64_t p = 0; p < header.pixels(); ++p) {
        if (coin[p].item<double>() < unlabelled_share) mask[p] = 255;
      }
      writer.write(i, image.data(), mask.data());
    }
    writer.finish();
  }
}
}  // namespace

TEST_CASE("a model trains on sparsely labelled shards, and predict --eval scores their labelled pixels only",
          "[infer][e2e]") {
  TrainFixture f;
  const std::string sparse = f.dir() / "sparse";
  write_sparse_copy(f.dir() / "data/train-*.h5", sparse, 0.6);
  write_sparse_copy(f.dir() / "data/val-*.h5", sparse, 0.6);
  const auto inspected = run_command(DPUNET_BINARY " data inspect " + sparse + "/val-00000.h5 2>&1");
  INFO(inspected.output);
  CHECK_THAT(inspected.output, HasSubstr("unlabelled pixels: mask value 255 (ignore label)") &&
                                   HasSubstr("unlabelled (255): 6"));  // 60% of the pixels, give or take
  const auto run =
      f.train(1, f.write_config("data: {train: '" + sparse + "/train-*.h5', val: '" + sparse + "/val-*.h5'}"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("validation step 8: loss ") && !HasSubstr("loss nan") && !HasSubstr("loss -nan"));
  const std::string checkpoint = dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(8);
  const auto predicted = run_command(DPUNET_BINARY " predict '" + sparse + "/val-*.h5' --checkpoint " + checkpoint +
                                     " --out " + f.dir() / "out --tile 32 --eval --no-png 2>&1");
  INFO(predicted.output);
  REQUIRE(predicted.exit_code == 0);
  // The pooled scores are those of the predicted masks against the labelled pixels.
  const dpunet::data::Dataset val(sparse + "/val-*.h5");
  dpunet::train::ConfusionCounts expected(3, 255);
  std::vector<unsigned char> image(val.header().image_values() *
                                   dpunet::data::pixel_type_bytes(val.header().pixel_type));
  torch::Tensor truth = torch::empty({1, val.header().height, val.header().width}, torch::kByte);
  for (int64_t i = 0; i < val.size(); ++i) {
    val.read(i, image.data(), truth.data_ptr<uint8_t>());
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06lld", static_cast<long long>(i));
    const torch::Tensor mask = read_mask(f.dir() / "out/predictions.h5", name).to(torch::kLong);
    expected.add(torch::one_hot(mask, 3).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat), truth.to(torch::kLong));
  }
  const auto eval = nlohmann::json::parse(dpunet::read_file(f.dir() / "out/eval.json"));
  const std::vector<double> dice = expected.dice();
  for (size_t k = 0; k < dice.size(); ++k) {
    INFO("class " << k);
    if (std::isnan(dice[k])) {
      CHECK(eval["dice"][k].is_null());
    } else {
      CHECK(eval["dice"][k].get<double>() == Approx(dice[k]));
    }
  }
  CHECK(eval["foreground_dice"].get<double>() == Approx(expected.foreground_dice()));
}

TEST_CASE("validation uses its own shards' ignore label, whichever set has one", "[infer][e2e]") {
  TrainFixture f;
  write_sparse_copy(f.dir() / "data/train-*.h5", f.dir() / "sparse", 0.5);
  write_sparse_copy(f.dir() / "data/val-*.h5", f.dir() / "sparse", 0.5);
  const std::string sparse = f.dir() / "sparse", full = f.dir() / "data";
  for (const auto& [train, val] : {std::pair<std::string, std::string>{full, sparse}, {sparse, full}}) {
    INFO("train " << train << ", val " << val);
    const auto run =
        f.train(1, f.write_config("data: {train: '" + train + "/train-*.h5', val: '" + val + "/val-*.h5'}"));
    INFO(run.output);
    CHECK(run.exit_code == 0);
    CHECK_THAT(run.output, HasSubstr("validation step 4: loss ") && !HasSubstr("loss nan"));
  }
}

namespace {

// A 4x4 grey PNG of ones under each name in `dir`.
void write_flat_pngs(const dpunet::test::TempDir& dir, std::initializer_list<const char*> names) {
  dpunet::data::Image image;
  image.height = image.width = 4;
  image.channels = 1;
  image.values.assign(16, 1);
  for (const char* name : names) dpunet::data::write_png(dir / name, image);
}

}  // namespace

TEST_CASE("masks beside their images are told apart by their suffix", "[infer]") {
  dpunet::test::TempDir dir;
  write_flat_pngs(dir, {"a.png", "a_mask.png", "b.png", "b_mask.png"});
  dpunet::infer::InputOptions options;
  options.masks_dir = dir.path();
  options.require_masks = true;
  options.n_classes = 2;
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir.path(), options),
                    HasSubstr("is the images' own folder") && HasSubstr("give --mask-suffix"));
  options.mask_suffix = "_mask";
  for (const std::string& input : {dir.path(), dir / "*.png"}) {
    const dpunet::infer::InputSet inputs(input, options);
    REQUIRE(inputs.size() == 2);
    CHECK(inputs.name(0) == "a");
    CHECK(inputs.name(1) == "b");
    CHECK(inputs.open(1).mask.defined());
  }
}

TEST_CASE("a pattern that matches nothing, or --eval without its masks folder, is refused naming it", "[infer]") {
  dpunet::test::TempDir dir;
  write_flat_pngs(dir, {"a.png"});
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir / "*.tif", dpunet::infer::InputOptions{}),
                    HasSubstr(dir / "*.tif: matches no file"));
  dpunet::infer::InputOptions options;
  options.require_masks = true;
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir.path(), options), HasSubstr("give --masks DIR"));
  options.masks_dir = dir / "masks";
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir.path(), options), HasSubstr(dir / "masks: no such folder (--masks)"));
}

TEST_CASE("an image no output can be named after is refused before any is predicted", "[infer]") {
  dpunet::test::TempDir dir;
  write_flat_pngs(dir, {"..png", "a.png"});
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir / "..png", dpunet::infer::InputOptions{}),
                    HasSubstr(dir / "..png") && HasSubstr("rename it"));
  // In a folder it is a hidden file, passed over as macOS's ._a.png is.
  write_flat_pngs(dir, {"._a.png"});
  const dpunet::infer::InputSet folder(dir.path(), dpunet::infer::InputOptions{});
  CHECK(folder.names() == std::vector<std::string>{"a"});
}

TEST_CASE("unlabelled pixels of image masks need a value that is no class of the model", "[infer]") {
  dpunet::test::TempDir dir;
  std::filesystem::create_directories(dir / "images");
  dpunet::data::Image image;
  image.height = image.width = 4;
  image.channels = 1;
  image.values.assign(16, 7);
  dpunet::data::write_png(dir / "images/a.png", image);
  dpunet::infer::InputOptions options;
  options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=ignore");
  options.n_classes = 256;
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir / "images", options),
                    HasSubstr("--mask-map VALUE=ignore") && HasSubstr("at most 255 classes"));
  options.n_classes = 255;
  CHECK(dpunet::infer::InputSet(dir / "images", options).ignore_label() == 255);
}

TEST_CASE("an input set's fixed affine turns stored values into the inputs it reads", "[infer]") {
  dpunet::test::TempDir dir;
  dpunet::data::Image image;
  image.height = 3;
  image.width = 5;
  image.channels = 1;
  for (uint16_t v = 0; v < 15; ++v) image.values.push_back(static_cast<uint16_t>(v * 17));
  dpunet::data::write_png(dir / "a.png", image);
  const torch::Tensor stored = torch::arange(15, torch::kFloat).view({1, 3, 5}) * 17;
  dpunet::infer::InputOptions options;
  options.display = false;
  const auto affine_of = [&](const dpunet::data::Normalizer& normalizer) {
    options.normalizer = normalizer;
    return dpunet::infer::InputSet(dir / "a.png", options).fixed_affine(0);
  };
  const auto check_against_read = [&](const dpunet::data::Normalizer& normalizer, const torch::Tensor& expected) {
    const auto affine = affine_of(normalizer);
    REQUIRE(affine);
    REQUIRE(affine->size() == 1);
    CHECK(torch::allclose(expected, stored * (*affine)[0].scale + (*affine)[0].shift, 1e-5, 1e-6));
    // Read in two bands, as a prediction reads them.
    const dpunet::infer::InputItem item = dpunet::infer::InputSet(dir / "a.png", options).open(0);
    const torch::Tensor read = torch::cat({item.image->read(2), item.image->read(1)}, 1);
    CHECK(torch::allclose(read, expected, 1e-5, 1e-6));
  };
  check_against_read(dpunet::data::Normalization::kNone, stored / 255);
  dpunet::data::Normalizer statistics(dpunet::data::Normalization::kDataset);
  statistics.channel_mean = {100};
  statistics.channel_std = {20};
  statistics.pixel_type = "uint8";
  check_against_read(statistics, (stored - 100) / 20);
  // Each image's own statistics: no fixed affine.
  CHECK_FALSE(affine_of(dpunet::data::Normalization::kPerImage));
  CHECK_FALSE(affine_of(dpunet::data::Normalization::kDataset));  // image files carry no statistics
  statistics.pixel_type = "uint16";                               // in other units: each image is standardised instead
  CHECK_FALSE(affine_of(statistics));
  // A 16-bit file after an 8-bit one: refused with statistics when the set is made, before
  // any image is predicted (an ensemble's second set is made alike).
  image.bits = 16;
  dpunet::test::write_tiff16(dir / "b.tif", image);
  statistics.pixel_type = "";
  options.normalizer = statistics;
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir.path(), options),
                    HasSubstr(dir / "b.tif: 16-bit pixels, but " + dir / "a.png has 8-bit"));
  // Without statistics each is standardised by its own: no fixed affine for either.
  options.normalizer = dpunet::data::Normalizer{};
  options.normalizer.mode = dpunet::data::Normalization::kPerImage;
  const dpunet::infer::InputSet both(dir.path(), options);
  REQUIRE(both.size() == 2);
  CHECK_FALSE(both.fixed_affine(1));
}

TEST_CASE("an image file is standardised by its own statistics and drawn from its first channel", "[infer]") {
  dpunet::test::TempDir dir;
  // 16-bit RGB, one channel's values far from zero, one constant (standardised to zeros).
  dpunet::data::Image image;
  image.height = 150;
  image.width = 7;
  image.channels = 3;
  image.bits = 16;
  const torch::Tensor stored =
      torch::randint(0, 1000, {3, 150, 7}, torch::kFloat) * torch::tensor({1.f, 1.f, 0.f}).view({3, 1, 1}) +
      torch::tensor({60000.f, 0.f, 500.f}).view({3, 1, 1});
  const torch::Tensor hwc = stored.permute({1, 2, 0}).contiguous();
  for (int64_t i = 0; i < hwc.numel(); ++i) image.values.push_back(static_cast<uint16_t>(hwc.data_ptr<float>()[i]));
  dpunet::test::write_tiff16(dir / "a.tif", image);
  dpunet::infer::InputOptions options;
  options.normalizer = dpunet::data::Normalizer(dpunet::data::Normalization::kPerImage);
  const dpunet::infer::InputItem item = dpunet::infer::InputSet(dir / "a.tif", options).open(0);
  std::vector<torch::Tensor> bands;
  for (int64_t top = 0; top < 150; top += 64) bands.push_back(item.image->read(std::min<int64_t>(64, 150 - top)));
  const torch::Tensor read = torch::cat(bands, 1);
  const torch::Tensor as_double = stored.to(torch::kDouble);
  const torch::Tensor expected =
      (as_double - as_double.mean({1, 2}, true)) / as_double.std({1, 2}, false, true).clamp_min(1e-8);
  CHECK(torch::allclose(read.to(torch::kDouble), expected, 1e-4, 1e-4));
  // The overlay's grey: the first channel stretched over 0..255.
  const torch::Tensor first = stored[0];
  const torch::Tensor drawn = ((first - first.min()) * (255 / (first.max() - first.min()))).round().to(torch::kByte);
  CHECK(torch::equal(item.image->display(), drawn.unsqueeze(0)));
  // An 8-bit file's copy is kept, and stretched, a byte a pixel.
  dpunet::data::Image grey;
  grey.height = 3;
  grey.width = 5;
  grey.channels = 1;
  for (uint16_t v = 0; v < 15; ++v) grey.values.push_back(static_cast<uint16_t>(20 + v * 13));
  dpunet::data::write_png(dir / "b.png", grey);
  const dpunet::infer::InputItem eight = dpunet::infer::InputSet(dir / "b.png", options).open(0);
  eight.image->read(3);
  const torch::Tensor values = torch::arange(15, torch::kFloat).view({1, 3, 5}) * 13;
  CHECK(torch::equal(eight.image->display(), (values * (255 / values.max())).round().to(torch::kByte)));
}

TEST_CASE("an image file read a band at a time onto a GPU gives the CPU's prediction", "[gpu]") {
  if (!torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU");
    return;
  }
  dpunet::test::TempDir dir;
  dpunet::data::Image image;
  image.height = 300;  // several reads of 64 rows, copied from pinned memory without waiting
  image.width = 90;
  image.channels = 3;
  torch::manual_seed(5);
  const torch::Tensor values = torch::randint(0, 256, {300 * 90 * 3}, torch::kInt);
  for (int64_t i = 0; i < values.numel(); ++i) image.values.push_back(static_cast<uint16_t>(values[i].item<int>()));
  dpunet::data::write_png(dir / "a.png", image);
  dpunet::infer::InputOptions options;
  options.normalizer = dpunet::data::Normalizer(dpunet::data::Normalization::kPerImage);
  const torch::Tensor kernel = torch::randn({2, 3, 3, 3}) * 0.3;
  dpunet::infer::TileOptions tiles;
  tiles.input_tile = tiles.output_tile = 32;
  tiles.overlap = 0.5;
  tiles.batch = 3;
  const auto predict_on = [&](const torch::Device& device) {
    dpunet::infer::InputItem item = dpunet::infer::InputSet(dir / "a.png", options).open(0);
    const torch::Tensor k = kernel.to(device);
    const auto rows = std::make_shared<dpunet::infer::SharedRows>(std::move(item.image), device);
    dpunet::infer::TiledPrediction prediction([k](const torch::Tensor& x) { return torch::conv2d(x, k, {}, 1, 1); },
                                              rows, tiles);
    torch::Tensor probabilities = torch::empty({2, 300, 90});
    while (!prediction.done()) {
      const dpunet::infer::ProbabilityRows band = prediction.next();
      probabilities.slice(1, band.row, band.row + band.probabilities.size(1)).copy_(band.probabilities.cpu());
    }
    return std::make_pair(probabilities, rows->source().display());
  };
  const auto [cpu, cpu_display] = predict_on(torch::kCPU);
  const auto [gpu, gpu_display] = predict_on(torch::kCUDA);
  CHECK(torch::allclose(gpu, cpu, 1e-4, 1e-5));
  CHECK(torch::equal(gpu_display, cpu_display));
}

TEST_CASE("image files are dealt to ranks by size, largest first", "[infer]") {
  dpunet::test::TempDir dir;
  // Images 10 wide and 10, 80, 20, 30, 40 and 50 high.
  const std::vector<int64_t> heights = {10, 80, 20, 30, 40, 50};
  for (size_t i = 0; i < heights.size(); ++i) {
    dpunet::data::Image image;
    image.height = heights[i];
    image.width = 10;
    image.channels = 1;
    image.values.assign(static_cast<size_t>(heights[i] * 10), 7);
    dpunet::data::write_png(dir / ("im" + std::to_string(i) + ".png"), image);
  }
  dpunet::infer::InputOptions options;
  const dpunet::infer::InputSet inputs(dir.path(), options);
  REQUIRE(inputs.image_size(1).height == 80);
  REQUIRE(inputs.image_size(1).width == 10);
  std::vector<dpunet::infer::ImageSize> sizes;
  for (int64_t i = 0; i < inputs.size(); ++i) sizes.push_back(inputs.image_size(i));
  // The images each rank predicts whole (split false, or at least as many images as ranks).
  const auto dealt = [](const std::vector<dpunet::infer::ImageSize>& sizes, int rank, int world, bool split = false) {
    std::vector<int64_t> indices;
    for (const auto& share : dpunet::infer::share_images(sizes, rank, world, split, 1)) {
      CHECK(share.whole());
      CHECK(share.owner == rank);
      CHECK(share.row_end == sizes[static_cast<size_t>(share.index)].height);
      indices.push_back(share.index);
    }
    return indices;
  };
  // Largest first: 80 -> rank 0; 50 -> 1; 40 -> 1 (90); 30 -> 0 (110); 20 -> 1 (110);
  // 10 -> 0 (the lower rank of two equal loads).
  CHECK(dealt(sizes, 0, 2, true) == std::vector<int64_t>{0, 1, 3});
  CHECK(dealt(sizes, 1, 2, true) == std::vector<int64_t>{2, 4, 5});
  CHECK(dealt(sizes, 0, 1, true) == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
  // More ranks than images, not split: each has one at most, and every image is dealt once.
  std::vector<int64_t> all;
  for (int rank = 0; rank < 7; ++rank) {
    const auto mine = dealt(sizes, rank, 7);
    CHECK(mine.size() <= 1);
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
  // Images of one size go round the ranks.
  CHECK(dealt(std::vector<dpunet::infer::ImageSize>(5, {5, 1}), 1, 2) == std::vector<int64_t>{1, 3});
  // An unreadable image counts as empty and is still dealt (its open() says what is wrong).
  std::ofstream(dir / "im6.png") << "not a png";
  const auto unreadable = dpunet::infer::InputSet(dir.path(), options).image_size(6);
  CHECK((unreadable.height == 0 && unreadable.width == 0));
}

TEST_CASE("fewer images than ranks are cut into bands of rows, one band a rank", "[infer]") {
  using dpunet::infer::share_images;
  // One 100-row image on 3 ranks, bands of at least 32 rows: three bands, rank 0 owns it.
  const std::vector<dpunet::infer::ImageSize> one{{100, 10}};
  const auto owner = share_images(one, 0, 3, true, 32);
  REQUIRE(owner.size() == 1);
  CHECK(owner[0].owner == 0);
  CHECK((owner[0].row_begin == 0 && owner[0].row_end == 33));
  REQUIRE(owner[0].others.size() == 2);
  CHECK((owner[0].others[0].rank == 1 && owner[0].others[0].begin == 33 && owner[0].others[0].end == 66));
  CHECK((owner[0].others[1].rank == 2 && owner[0].others[1].begin == 66 && owner[0].others[1].end == 100));
  const auto middle = share_images(one, 1, 3, true, 32);
  REQUIRE(middle.size() == 1);
  CHECK((middle[0].owner == 0 && middle[0].row_begin == 33 && middle[0].row_end == 66 && middle[0].others.empty()));
  CHECK_FALSE(middle[0].whole());
  // Bands of at least 40 rows: two; the third rank predicts nothing.
  CHECK(share_images(one, 1, 3, true, 40).at(0).row_begin == 50);
  CHECK(share_images(one, 2, 3, true, 40).empty());
  // Not split (stored probabilities): rank 0 predicts it whole, the others nothing.
  CHECK(share_images(one, 0, 3, false, 32).at(0).whole());
  CHECK(share_images(one, 1, 3, false, 32).empty());
  // 80 and 20 rows on 4 ranks: the spare ranks go to the image with the most pixels per
  // rank (800, then 400 against 200): ranks 0-2 share the first, rank 3 has the second.
  const std::vector<dpunet::infer::ImageSize> two{{80, 10}, {20, 10}};
  int64_t covered = 0;
  for (int rank = 0; rank < 3; ++rank) {
    const auto share = share_images(two, rank, 4, true, 10);
    REQUIRE(share.size() == 1);
    CHECK((share[0].index == 0 && share[0].owner == 0 && share[0].row_begin == covered));
    covered = share[0].row_end;
  }
  CHECK(covered == 80);
  const auto last = share_images(two, 3, 4, true, 10);
  REQUIRE(last.size() == 1);
  CHECK((last[0].index == 1 && last[0].owner == 3 && last[0].whole()));
}
