// `dpunet predict` with several models: the ensemble averages their class probabilities,
// each model seeing the inputs as it was trained, and refuses models that cannot be mixed.
#include <torch/torch.h>
#include "support/catch.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "config/config.h"
#include "data/image_io.h"
#include "infer/postprocess.h"
#include "support/prediction_fixture.h"

using dpunet::infer::keep_largest_regions;
using dpunet::test::predict_into;
using dpunet::test::probabilities_of;
using dpunet::test::read_mask;
using dpunet::test::read_prediction;
using dpunet::test::run_command;
using dpunet::test::TrainedModel;
using dpunet::test::write_changed_weights;

TEST_CASE("an ensemble averages its models' class probabilities, each model seeing the inputs as it was trained",
          "[infer][e2e]") {
  TrainedModel t;
  const std::string early = dpunet::checkpoint::CheckpointStore(t.f.run_dir()).path_for_step(4);
  for (const auto& [models, out] :
       std::vector<std::pair<std::string, std::string>>{{"--checkpoint " + early, "early"},
                                                        {"--checkpoint " + t.checkpoint, "late"},
                                                        {"--checkpoint " + early + " " + t.checkpoint, "both"}}) {
    const auto run = predict_into(t.f, models, out, "--eval");
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  CHECK_THAT(dpunet::read_file(t.f.dir() / "both/eval.json"), HasSubstr("\"models\""));
  const auto eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "both/eval.json"));
  CHECK(eval["models"] == nlohmann::json::array({early, t.checkpoint}));
  for (int i = 0; i < 6; ++i) {
    const torch::Tensor a = probabilities_of(t.f, "early", i), b = probabilities_of(t.f, "late", i);
    const torch::Tensor both = probabilities_of(t.f, "both", i);
    CHECK_FALSE(torch::allclose(a, b, 1e-3, 1e-3));  // two different models
    CHECK(torch::allclose(both, (a + b) / 2, 1e-5, 1e-6));
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06d", i);
    CHECK(torch::equal(read_mask(t.f.dir() / "both/predictions.h5", name), both.argmax(0).to(torch::kByte)));
  }
  // Post-processing: the masks written (and scored) keep each class's largest region.
  const auto largest = predict_into(t.f, "--checkpoint " + t.checkpoint, "largest", "--eval --keep-largest all");
  INFO(largest.output);
  REQUIRE(largest.exit_code == 0);
  CHECK(nlohmann::json::parse(dpunet::read_file(t.f.dir() / "largest/eval.json"))["keep_largest"] == "all");
  bool changed = false;
  for (int i = 0; i < 6; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06d", i);
    torch::Tensor expected = read_mask(t.f.dir() / "late/predictions.h5", name);
    keep_largest_regions(expected, dpunet::infer::parse_keep_largest("all", 3));
    CHECK(torch::equal(read_mask(t.f.dir() / "largest/predictions.h5", name), expected));
    changed = changed || !torch::equal(expected, read_mask(t.f.dir() / "late/predictions.h5", name));
  }
  CHECK(changed);  // a briefly trained model leaves stray regions to remove
  // With flip averaging, too: each model averages its flips, then the models are averaged.
  for (const auto& [models, out] :
       std::vector<std::pair<std::string, std::string>>{{"--checkpoint " + early, "early_tta"},
                                                        {"--checkpoint " + t.checkpoint, "late_tta"},
                                                        {"--checkpoint " + early + " " + t.checkpoint, "both_tta"}}) {
    const auto run = predict_into(t.f, models, out, "--tta");
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  for (int i = 0; i < 6; ++i) {
    const torch::Tensor a = probabilities_of(t.f, "early_tta", i), b = probabilities_of(t.f, "late_tta", i);
    CHECK_FALSE(torch::allclose(a, probabilities_of(t.f, "early", i), 1e-4, 1e-4));  // the flips count
    CHECK(torch::allclose(probabilities_of(t.f, "both_tta", i), (a + b) / 2, 1e-5, 1e-6));
  }

  // The same weights trained on brighter data: normalised with their own statistics.
  const std::string weights = t.f.dir() / "w.safetensors", brighter = t.f.dir() / "brighter.safetensors";
  REQUIRE(run_command(DPUNET_BINARY " export " + t.checkpoint + " " + weights + " 2>&1").exit_code == 0);
  write_changed_weights(weights, brighter, [](dpunet::config::Config& c) {
    REQUIRE_FALSE(c.data.channel_mean.empty());
    for (double& mean : c.data.channel_mean) mean += 40;
  });
  // And standardising each image by its own statistics (no shared image: its own copy).
  const std::string own = t.f.dir() / "own.safetensors";
  write_changed_weights(weights, own, [](dpunet::config::Config& c) { c.data.normalization = "per_image"; });
  for (const auto& [models, out] : std::vector<std::pair<std::string, std::string>>{
           {"--weights " + weights, "plain"},
           {"--weights " + brighter, "brighter"},
           {"--weights " + own, "own"},
           {"--weights " + weights + " " + brighter, "pair"},
           {"--weights " + own + " " + brighter + " " + weights, "three"}}) {
    const auto run = predict_into(t.f, models, out);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  for (int i = 0; i < 6; ++i) {
    const torch::Tensor a = probabilities_of(t.f, "plain", i), b = probabilities_of(t.f, "brighter", i);
    const torch::Tensor c = probabilities_of(t.f, "own", i);
    CHECK(torch::allclose(a, probabilities_of(t.f, "late", i), 1e-5, 1e-6));
    CHECK_FALSE(torch::allclose(a, b, 1e-3, 1e-3));
    CHECK_FALSE(torch::allclose(a, c, 1e-3, 1e-3));
    CHECK(torch::allclose(probabilities_of(t.f, "pair", i), (a + b) / 2, 1e-5, 1e-6));
    CHECK(torch::allclose(probabilities_of(t.f, "three", i), (a + b + c) / 3, 1e-5, 1e-6));
  }
  // Image files with their masks beside them: every model predicts the images alone.
  const std::string beside = t.f.dir() / "beside";
  std::filesystem::create_directories(beside);
  for (const char* name : {"x", "y"}) {
    dpunet::data::Image image;
    image.height = image.width = 48;
    image.channels = 1;
    for (int p = 0; p < 48 * 48; ++p) image.values.push_back(static_cast<uint16_t>((p * 7 + name[0]) % 251));
    dpunet::data::write_png(beside + "/" + name + ".png", image);
    for (uint16_t& v : image.values) v %= 3;
    dpunet::data::write_png(beside + "/" + name + "_mask.png", image);
  }
  for (const auto& [models, out] : std::vector<std::pair<std::string, std::string>>{
           {"--weights " + weights, "beside_plain"},
           {"--weights " + brighter, "beside_brighter"},
           {"--weights " + weights + " " + brighter + " --eval --masks " + beside + " --mask-suffix _mask",
            "beside_pair"}}) {
    const auto run = run_command(DPUNET_BINARY " predict " + beside + " " + models + " --out " + t.f.dir() / out +
                                 " --tile 32 --no-png --probabilities 2>&1");
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  CHECK(nlohmann::json::parse(dpunet::read_file(t.f.dir() / "beside_pair/eval.json"))["per_image"].size() == 2);
  for (const char* name : {"x", "y"}) {
    const auto read = [&](const std::string& out) {
      return read_prediction(t.f.dir() / (out + "/predictions.h5"), std::string(name) + "/probabilities",
                             torch::kFloat);
    };
    CHECK(torch::allclose(read("beside_pair"), (read("beside_plain") + read("beside_brighter")) / 2, 1e-5, 1e-6));
  }

  // Models that cannot be averaged, and two kinds of model file at once.
  const std::string two_classes = t.f.dir() / "two.safetensors";
  write_changed_weights(weights, two_classes, [](dpunet::config::Config& c) { c.model.n_classes = 2; });
  const auto mismatched = predict_into(t.f, "--weights " + weights + " " + two_classes, "bad");
  CHECK(mismatched.exit_code != 0);
  CHECK_THAT(mismatched.output, HasSubstr(two_classes + ": 1 input channel(s) and 2 classes; " + weights +
                                          ": 1 and 3: the models of an ensemble must agree"));
  const auto twice =
      predict_into(t.f, "--checkpoint " + t.checkpoint + " " + t.f.run_dir() + "/checkpoints/latest", "bad");
  CHECK(twice.exit_code != 0);
  CHECK_THAT(twice.output, HasSubstr("names " + t.checkpoint + ", which is already in the ensemble"));
  const auto mixed = predict_into(t.f, "--weights " + weights + " --checkpoint " + t.checkpoint, "bad");
  CHECK(mixed.exit_code != 0);
  CHECK_THAT(mixed.output, HasSubstr("not both"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "bad/predictions.h5"));
}
