// `dpunet predict` and `dpunet export` end to end: shards and PNG folders, checkpoints
// and exported weights giving the same masks, --eval, 2 ranks, and weights that do
// not fit the model.
#include <hdf5.h>
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "common/remove_tree.h"
#include "config/config.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/import.h"
#include "data/normalize.h"
#include "data/shard_writer.h"
#include "infer/inputs.h"
#include "infer/postprocess.h"
#include "support/image_files.h"
#include "support/train_fixture.h"
#include "train/metrics.h"

using dpunet::infer::keep_largest_regions;
using dpunet::test::run_command;
using dpunet::test::TrainFixture;

namespace {

// One dataset of a prediction file: "NAME/mask" (uint8) or "NAME/probabilities" (float).
torch::Tensor read_prediction(const std::string& file, const std::string& path, torch::ScalarType type) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  hid_t space = H5Dget_space(d);
  std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  torch::Tensor values = torch::empty(std::vector<int64_t>(dims.begin(), dims.end()), type);
  H5Dread(d, type == torch::kByte ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
          values.data_ptr());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return values;
}

torch::Tensor read_mask(const std::string& file, const std::string& name) {
  return read_prediction(file, name + "/mask", torch::kByte);
}

// A fixture with a briefly trained model.
struct Trained {
  TrainFixture f;
  std::string checkpoint;
  Trained() {
    const auto run = f.train(1, f.write_config());
    REQUIRE(run.exit_code == 0);
    checkpoint = dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(8);
  }
};

}  // namespace

TEST_CASE("predict from a checkpoint and from exported weights gives the same masks", "[infer][e2e]") {
  Trained t;
  const std::string val = t.f.dir() / "data/val-*.h5";
  const auto exported = run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.f.dir() / "w.safetensors 2>&1");
  INFO(exported.output);
  REQUIRE(exported.exit_code == 0);
  const auto a = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint + " --out " +
                             t.f.dir() / "a --tile 32 --eval --tta 2>&1");
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const auto b = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                             " --out " + t.f.dir() / "b --tile 32 --tta --no-png 2>&1");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  for (int i = 0; i < 6; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06d", i);
    const torch::Tensor ma = read_mask(t.f.dir() / "a/predictions.h5", name);
    CHECK(ma.sizes() == std::vector<int64_t>{48, 48});
    CHECK(torch::equal(ma, read_mask(t.f.dir() / "b/predictions.h5", name)));
  }
  CHECK(std::filesystem::exists(t.f.dir() / "a/sample-000000_mask.png"));
  CHECK(dpunet::data::read_image(t.f.dir() / "a/sample-000000_overlay.png").channels == 3);
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "b/sample-000000_mask.png"));
  const auto eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "a/eval.json"));
  CHECK(eval["dice"].size() == 3);
  CHECK(eval["foreground_dice"].get<double>() > 0.0);
}

TEST_CASE("predict and export refuse to write over their own inputs", "[infer][e2e]") {
  Trained t;
  const std::string data = t.f.dir() / "data";
  const auto into_inputs = run_command(DPUNET_BINARY " predict '" + data + "/val-*.h5' --checkpoint " + t.checkpoint +
                                       " --out " + data + " --tile 32 2>&1");
  CHECK(into_inputs.exit_code != 0);
  CHECK_THAT(into_inputs.output, HasSubstr("--out " + data + " is the folder of the inputs"));
  CHECK_FALSE(std::filesystem::exists(data + "/predictions.h5"));
  // A file named like a prediction that no predict listed (a ground-truth mask kept in
  // --out) is never removed, --overwrite or not.
  const std::string out = t.f.dir() / "out";
  std::filesystem::create_directories(out);
  dpunet::write_file_atomically(out + "/old_mask.png", "x");
  const std::string again =
      DPUNET_BINARY " predict '" + data + "/val-*.h5' --checkpoint " + t.checkpoint + " --tile 32 --out " + out;
  for (const std::string& flags : {"", " --overwrite"}) {
    const auto foreign = run_command(again + flags + " 2>&1");
    CHECK(foreign.exit_code != 0);
    CHECK_THAT(foreign.output, HasSubstr("old_mask.png, named like this command's outputs but not written by it"));
    CHECK(dpunet::read_file(out + "/old_mask.png") == "x");
  }
  std::filesystem::remove(out + "/old_mask.png");
  // An earlier prediction's own files would mix with this one's: refused, or replaced.
  const auto first = run_command(again + " 2>&1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(dpunet::read_file(out + "/predict-files.txt"),
             HasSubstr("predictions.h5\n") && HasSubstr("sample-000000_mask.png\n"));
  const auto mixed = run_command(again + " 2>&1");
  CHECK(mixed.exit_code != 0);
  CHECK_THAT(mixed.output, HasSubstr("file(s) of an earlier prediction") && HasSubstr("--overwrite"));
  // A file copied over one of its predictions (the ground truth, to compare) is no
  // longer the prediction: --overwrite refuses rather than delete it.
  const std::string copied = out + "/sample-000000_mask.png";
  std::filesystem::remove(copied);
  dpunet::write_file_atomically(copied, "truth");
  const auto over_copy = run_command(again + " --overwrite 2>&1");
  CHECK(over_copy.exit_code != 0);
  CHECK_THAT(over_copy.output, HasSubstr("sample-000000_mask.png, named like this command's outputs but not written "
                                         "by it as they are now"));
  CHECK(dpunet::read_file(copied) == "truth");
  std::filesystem::remove(copied);
  // A killed run's file, listed but never stamped, is the run's; a file merely named like
  // a manifest is not one.
  dpunet::write_file_atomically(out + "/sample-000099_mask.png", "stale");
  dpunet::write_file_atomically(out + "/predict-files-notes.txt", "notes.txt\n");
  dpunet::write_file_atomically(out + "/predict-files.txt",
                                dpunet::read_file(out + "/predict-files.txt") + "sample-000099_mask.png\n");
  dpunet::write_file_atomically(out + "/notes.txt", "mine");
  const auto replaced = run_command(again + " --no-png --overwrite 2>&1");
  INFO(replaced.output);
  CHECK(replaced.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(out + "/sample-000099_mask.png"));
  CHECK_FALSE(std::filesystem::exists(out + "/sample-000000_mask.png"));
  CHECK(std::filesystem::exists(out + "/predictions.h5"));
  CHECK(dpunet::read_file(out + "/notes.txt") == "mine");
  CHECK(dpunet::read_file(out + "/predict-files-notes.txt") == "notes.txt\n");
  const auto size_before = std::filesystem::file_size(t.checkpoint);
  const auto over_checkpoint = run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.checkpoint + " 2>&1");
  CHECK(over_checkpoint.exit_code != 0);
  CHECK_THAT(over_checkpoint.output, HasSubstr("is the checkpoint itself"));
  CHECK(std::filesystem::file_size(t.checkpoint) == size_before);
  const std::string run_config = std::filesystem::path(t.checkpoint).parent_path().parent_path() / "config.yaml";
  const auto config_before = std::filesystem::file_size(run_config);
  const auto over_config = run_command(DPUNET_BINARY " export " + t.checkpoint + " " + run_config + " 2>&1");
  CHECK(over_config.exit_code != 0);
  CHECK_THAT(over_config.output, HasSubstr("name the output file *.safetensors"));
  CHECK(std::filesystem::file_size(run_config) == config_before);
}

TEST_CASE("a run directory names its best checkpoint, and weights and checkpoints given the wrong way are named",
          "[infer][e2e]") {
  Trained t;
  const std::string run = t.f.run_dir();
  const auto best = dpunet::checkpoint::CheckpointStore(run).best();
  REQUIRE(best);
  const auto by_folder = run_command(DPUNET_BINARY " export " + run + " " + t.f.dir() / "a.safetensors 2>&1");
  INFO(by_folder.output);
  REQUIRE(by_folder.exit_code == 0);
  CHECK_THAT(by_folder.output, HasSubstr("checkpoint: " + *best + " (the best of " + run + ")"));
  const auto by_file = run_command(DPUNET_BINARY " export " + *best + " " + t.f.dir() / "b.safetensors 2>&1");
  REQUIRE(by_file.exit_code == 0);
  CHECK(dpunet::read_file(t.f.dir() / "a.safetensors") == dpunet::read_file(t.f.dir() / "b.safetensors"));
  const auto by_pointer =
      run_command(DPUNET_BINARY " export " + run + "/checkpoints/latest " + t.f.dir() / "c.safetensors 2>&1");
  CHECK_THAT(by_pointer.output, HasSubstr("checkpoint: " + t.checkpoint + " (latest)"));
  // Relative names from inside the run directory and its checkpoints/ name the same files.
  for (const auto& [folder, argument, same_as] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {run, "checkpoints/latest", "c"}, {run + "/checkpoints", "best", "a"}, {run, "checkpoints", "a"}}) {
    const auto relative = run_command("cd " + folder + " && " DPUNET_BINARY " export " + argument + " " +
                                      t.f.dir() / "relative.safetensors 2>&1");
    INFO(folder << " " << argument << ": " << relative.output);
    CHECK(relative.exit_code == 0);
    CHECK(dpunet::read_file(t.f.dir() / "relative.safetensors") ==
          dpunet::read_file(t.f.dir() / (same_as + ".safetensors")));
  }
  const auto not_a_run = run_command(DPUNET_BINARY " export " + t.f.dir() / "data " + t.f.dir() / "d.safetensors 2>&1");
  CHECK(not_a_run.exit_code != 0);
  CHECK_THAT(not_a_run.output, HasSubstr("neither a run directory"));
  const auto swapped = run_command(DPUNET_BINARY " predict '" + t.f.dir() / "data/val-*.h5" + "' --weights " +
                                   t.checkpoint + " --out " + t.f.dir() / "p 2>&1");
  CHECK(swapped.exit_code != 0);
  CHECK_THAT(swapped.output, HasSubstr("is a dpunet training checkpoint") && HasSubstr("--checkpoint"));
  const auto reversed = run_command(DPUNET_BINARY " export " + t.f.dir() / "a.safetensors " + t.f.dir() / "e 2>&1");
  CHECK(reversed.exit_code != 0);
  CHECK_THAT(reversed.output, HasSubstr("looks like safetensors weights: give those with --weights"));
}

namespace {

// Predicts the validation shards into DIR/OUT with class probabilities; `models` are
// the --checkpoint or --weights arguments.
dpunet::test::CommandResult predict_into(const TrainFixture& f, const std::string& models, const std::string& out,
                                         const std::string& extra = "") {
  return run_command(DPUNET_BINARY " predict '" + f.dir() / "data/val-*.h5" + "' " + models + " --out " +
                     f.dir() / out + " --tile 32 --no-png --probabilities " + extra + " 2>&1");
}

torch::Tensor probabilities_of(const TrainFixture& f, const std::string& out, int sample) {
  char name[48];
  std::snprintf(name, sizeof(name), "sample-%06d/probabilities", sample);
  return read_prediction(f.dir() / (out + "/predictions.h5"), name, torch::kFloat);
}

// Copies safetensors weights with their saved config changed by `change`.
void write_changed_weights(const std::string& from, const std::string& to,
                           const std::function<void(dpunet::config::Config&)>& change) {
  const auto metadata = dpunet::checkpoint::read_safetensors_metadata(from);
  dpunet::config::Config config = dpunet::config::parse_saved_config(metadata.at("dpunet_config"), from);
  change(config);
  dpunet::checkpoint::write_safetensors(to, dpunet::checkpoint::read_safetensors(from),
                                        {{"format", "pt"}, {"dpunet_config", dpunet::config::to_yaml(config)}});
}

}  // namespace

TEST_CASE("a model trained with SyncBatchNorm predicts and exports like a BatchNorm one", "[infer][e2e]") {
  TrainFixture f;
  const auto run = f.train(1, f.write_config("model:\n  norm: sync_batch\n"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const std::string checkpoint = dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(8);
  const std::string val = f.dir() / "data/val-*.h5";
  const auto exported = run_command(DPUNET_BINARY " export " + checkpoint + " " + f.dir() / "w.safetensors 2>&1");
  INFO(exported.output);
  REQUIRE(exported.exit_code == 0);
  const auto a = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + checkpoint + " --out " +
                             f.dir() / "a --tile 32 --no-png --probabilities 2>&1");
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const auto b = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + f.dir() / "w.safetensors" + " --out " +
                             f.dir() / "b --tile 32 --no-png --probabilities 2>&1");
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  CHECK(torch::equal(read_prediction(f.dir() / "a/predictions.h5", "sample-000000/probabilities", torch::kFloat),
                     read_prediction(f.dir() / "b/predictions.h5", "sample-000000/probabilities", torch::kFloat)));
  // The same weights described as a BatchNorm model: in eval mode both normalise with the
  // running statistics, so the probabilities are the same bits.
  write_changed_weights(f.dir() / "w.safetensors", f.dir() / "batch.safetensors",
                        [](dpunet::config::Config& c) { c.model.norm = "batch"; });
  const auto c = predict_into(f, "--weights " + f.dir() / "batch.safetensors", "c");
  INFO(c.output);
  REQUIRE(c.exit_code == 0);
  for (int i = 0; i < 6; ++i) {
    INFO("sample " << i);
    CHECK(torch::equal(probabilities_of(f, "a", i), probabilities_of(f, "c", i)));
  }
}

TEST_CASE("predict's --overlap, --normalization and --bilinear change what it computes", "[infer][e2e]") {
  Trained t;
  const std::string model = "--checkpoint " + t.checkpoint;
  const auto plain = predict_into(t.f, model, "plain");
  INFO(plain.output);
  REQUIRE(plain.exit_code == 0);
  auto differs_from_plain = [&](const std::string& out, const std::string& option) {
    const auto run = predict_into(t.f, model, out, option);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    bool differs = false;
    for (int i = 0; i < 6; ++i)
      differs = differs || !torch::equal(probabilities_of(t.f, out, i), probabilities_of(t.f, "plain", i));
    return differs;
  };
  // 48x48 images in 32-pixel tiles: the default overlap (0.5) and 0 both place tiles at
  // 0 and 16 (the last one is moved inside); 0.75 adds one at 8.
  CHECK(differs_from_plain("overlap", "--overlap 0.75"));
  // The trained model's inputs are scaled with the training set's statistics; unscaled or
  // per-image scaled inputs give other probabilities.
  CHECK(differs_from_plain("unscaled", "--normalization none"));
  CHECK(differs_from_plain("per_image", "--normalization per_image"));
  const auto unknown = predict_into(t.f, model, "unknown", "--normalization sideways");
  CHECK(unknown.exit_code != 0);
  CHECK_THAT(unknown.output, HasSubstr("sideways"));
  // --bilinear describes weights: these come from a transposed-convolution model, and a
  // bilinear U-Net halves its bottom block (down2 at depth 2), whose weights then differ.
  REQUIRE(run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.f.dir() / "w.safetensors").exit_code == 0);
  const std::string weights = "--weights " + t.f.dir() / "w.safetensors";
  const auto transposed = predict_into(t.f, weights, "transposed");
  INFO(transposed.output);
  CHECK(transposed.exit_code == 0);
  const auto bilinear = predict_into(t.f, weights + " --bilinear", "bilinear");
  CHECK(bilinear.exit_code != 0);
  CHECK_THAT(bilinear.output, HasSubstr("do not fit the model") && HasSubstr("down2.maxpool_conv"));
}

TEST_CASE("an ensemble averages its models' class probabilities, each model seeing the inputs as it was trained",
          "[infer][e2e]") {
  Trained t;
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
  for (const auto& [models, out] :
       std::vector<std::pair<std::string, std::string>>{{"--weights " + weights, "plain"},
                                                        {"--weights " + brighter, "brighter"},
                                                        {"--weights " + weights + " " + brighter, "pair"}}) {
    const auto run = predict_into(t.f, models, out);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  }
  for (int i = 0; i < 6; ++i) {
    const torch::Tensor a = probabilities_of(t.f, "plain", i), b = probabilities_of(t.f, "brighter", i);
    CHECK(torch::allclose(a, probabilities_of(t.f, "late", i), 1e-5, 1e-6));
    CHECK_FALSE(torch::allclose(a, b, 1e-3, 1e-3));
    CHECK(torch::allclose(probabilities_of(t.f, "pair", i), (a + b) / 2, 1e-5, 1e-6));
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

TEST_CASE("predict reads PNG folders with masks, and shares images over ranks", "[infer][e2e]") {
  Trained t;
  std::filesystem::create_directories(t.f.dir() / "png/images");
  std::filesystem::create_directories(t.f.dir() / "png/masks");
  for (int i = 0; i < 3; ++i) {
    dpunet::data::Image image, mask;
    image.height = mask.height = 40 + i;
    image.width = mask.width = 37;
    image.channels = mask.channels = 1;
    for (int64_t p = 0; p < image.height * image.width; ++p) {
      image.values.push_back(static_cast<uint16_t>((p * 7) % 200));
      mask.values.push_back(static_cast<uint16_t>(p % 3));
    }
    dpunet::data::write_png(t.f.dir() / ("png/images/im" + std::to_string(i) + ".png"), image);
    dpunet::data::write_png(t.f.dir() / ("png/masks/im" + std::to_string(i) + ".png"), mask);
  }
  const std::string command = " " DPUNET_BINARY " predict " + t.f.dir() / "png/images" + " --masks " +
                              t.f.dir() / "png/masks" + " --checkpoint " + t.checkpoint + " --out " +
                              t.f.dir() / "out --eval 2>&1";
  const auto run = run_command("OMP_NUM_THREADS=1 " DPUNET_MPI_LAUNCHER " 2" + command);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(std::filesystem::exists(t.f.dir() / "out/predictions-rank000.h5"));
  CHECK(std::filesystem::exists(t.f.dir() / "out/predictions-rank001.h5"));
  CHECK(read_mask(t.f.dir() / "out/predictions-rank001.h5", "im1").size(0) == 41);
  CHECK(dpunet::data::read_image(t.f.dir() / "out/im2_mask.png").height == 42);
  // Every image scored once, on whichever rank predicted it, listed in input order.
  const auto eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "out/eval.json"));
  CHECK(eval["images"] == 3);
  REQUIRE(eval["per_image"].size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(eval["per_image"][i]["name"] == "im" + std::to_string(i));
  CHECK(eval["image_mean"]["dice"].size() == 3);
  // The same masks and scores as one process predicting every image.
  const std::string alone_command = " " DPUNET_BINARY " predict " + t.f.dir() / "png/images" + " --masks " +
                                    t.f.dir() / "png/masks" + " --checkpoint " + t.checkpoint + " --out " +
                                    t.f.dir() / "alone --eval 2>&1";
  const auto alone = run_command("OMP_NUM_THREADS=1" + alone_command);
  INFO(alone.output);
  REQUIRE(alone.exit_code == 0);
  for (int i = 0; i < 3; ++i) {
    const std::string mask = "im" + std::to_string(i) + "_mask.png";
    INFO(mask);
    CHECK(dpunet::data::read_image(t.f.dir() / ("out/" + mask)).values ==
          dpunet::data::read_image(t.f.dir() / ("alone/" + mask)).values);
  }
  const auto alone_eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "alone/eval.json"));
  CHECK(eval["dice"] == alone_eval["dice"]);
  CHECK(eval["per_image"] == alone_eval["per_image"]);
}

TEST_CASE("ranks that list different images stop together, naming what each sees", "[infer][e2e]") {
  Trained t;
  dpunet::data::Image image;
  image.height = image.width = 32;
  image.channels = 1;
  image.values.assign(32 * 32, 9);
  // Node-local copies that went out of step: rank 1's folder holds other images.
  for (const char* name : {"in0/a.png", "in0/b.png", "in1/a.png", "in1/c.png", "in1/c_mask.png"}) {
    std::filesystem::create_directories((t.f.dir() / name).substr(0, (t.f.dir() / name).rfind('/')));
    dpunet::data::write_png(t.f.dir() / name, image);
  }
  // Inside sh -c '...': the binary in double quotes.
  const std::string predict = "\"" DPUNET_BINARY_PATH "\" predict " + t.f.dir().path() +
                              "/in$OMPI_COMM_WORLD_RANK --checkpoint " + t.checkpoint + " --tile 32 --out " +
                              t.f.dir() / "out";
  const auto run = run_command("OMP_NUM_THREADS=1 " DPUNET_MPI_LAUNCHER " 2 sh -c '" + predict + "' 2>&1");
  INFO(run.output);
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, HasSubstr("differs between ranks: rank 0 sees 2 images, list ") &&
                             HasSubstr("rank(s) 1 see something else (rank 1: 3 images") && !HasSubstr("MPI_ABORT"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "out/predictions-rank000.h5"));
  // With --mask-suffix, masks among the images are left out even without --eval.
  const auto alone = run_command(DPUNET_BINARY " predict " + t.f.dir() / "in1 --mask-suffix _mask --checkpoint " +
                                 t.checkpoint + " --tile 32 --no-png --out " + t.f.dir() / "out 2>&1");
  INFO(alone.output);
  REQUIRE(alone.exit_code == 0);
  CHECK_THAT(alone.output, HasSubstr("2 images"));
  CHECK(read_mask(t.f.dir() / "out/predictions.h5", "c").size(0) == 32);
}

TEST_CASE("predict scales shards and image files alike, with the training set's statistics", "[infer][e2e]") {
  Trained t;
  // The validation shards' samples, written out as 8-bit PNGs.
  const std::string val = t.f.dir() / "data/val-*.h5";
  const dpunet::data::Dataset shards(val);
  std::filesystem::create_directories(t.f.dir() / "png");
  std::vector<unsigned char> scratch;
  for (int64_t i = 0; i < shards.size(); ++i) {
    const auto sample = dpunet::data::load_sample(shards, i, dpunet::data::Normalization::kNone, scratch);
    dpunet::data::Image image;
    image.height = sample.height;
    image.width = sample.width;
    image.channels = 1;
    for (float v : sample.image) image.values.push_back(static_cast<uint16_t>(std::lround(v * 255.0f)));
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06lld.png", static_cast<long long>(i));
    dpunet::data::write_png(t.f.dir() / ("png/" + std::string(name)), image);
  }
  const std::string model = " --checkpoint " + t.checkpoint + " --tile 32 --no-png --probabilities";
  const auto from_shards =
      run_command(DPUNET_BINARY " predict '" + val + "'" + model + " --out " + t.f.dir() / "a 2>&1");
  INFO(from_shards.output);
  REQUIRE(from_shards.exit_code == 0);
  const auto from_files =
      run_command(DPUNET_BINARY " predict " + t.f.dir() / "png" + model + " --out " + t.f.dir() / "b 2>&1");
  INFO(from_files.output);
  REQUIRE(from_files.exit_code == 0);
  CHECK_THAT(from_files.output, !HasSubstr("measured on"));
  for (int64_t i = 0; i < shards.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "sample-%06lld", static_cast<long long>(i));
    CHECK(
        torch::equal(read_mask(t.f.dir() / "a/predictions.h5", name), read_mask(t.f.dir() / "b/predictions.h5", name)));
  }
  // A 16-bit image is in other units than the model's uint8 statistics: said, and standardised.
  dpunet::data::Image wide = dpunet::data::read_image(t.f.dir() / "png/sample-000000.png");
  for (auto& v : wide.values) v = static_cast<uint16_t>(v * 257);
  std::filesystem::create_directories(t.f.dir() / "png16");
  dpunet::test::write_tiff16(t.f.dir() / "png16/wide.tif", wide);
  const auto other_units =
      run_command(DPUNET_BINARY " predict " + t.f.dir() / "png16" + model + " --out " + t.f.dir() / "c 2>&1");
  INFO(other_units.output);
  CHECK(other_units.exit_code == 0);
  CHECK_THAT(other_units.output, HasSubstr("measured on uint8 pixels") && HasSubstr("holds uint16"));
  // 8- and 16-bit files in one run would be scaled differently: refused, naming both.
  std::filesystem::copy_file(t.f.dir() / "png/sample-000000.png", t.f.dir() / "png16/zeta.png");
  const auto mixed =
      run_command(DPUNET_BINARY " predict " + t.f.dir() / "png16" + model + " --out " + t.f.dir() / "d 2>&1");
  CHECK(mixed.exit_code != 0);
  CHECK_THAT(mixed.output, HasSubstr("zeta.png: 8-bit pixels, but ") && HasSubstr("wide.tif has 16-bit"));
  // A glob of images reads them as images (the same predictions as their folder).
  const auto globbed =
      run_command(DPUNET_BINARY " predict '" + t.f.dir() / "png/*.png'" + model + " --out " + t.f.dir() / "e 2>&1");
  INFO(globbed.output);
  REQUIRE(globbed.exit_code == 0);
  CHECK(torch::equal(read_mask(t.f.dir() / "e/predictions.h5", "sample-000001"),
                     read_mask(t.f.dir() / "b/predictions.h5", "sample-000001")));
  // A folder with neither images nor shards says so.
  std::filesystem::create_directories(t.f.dir() / "jpegs");
  dpunet::write_file_atomically(t.f.dir() / "jpegs/photo.jpg", "x");
  const auto nothing =
      run_command(DPUNET_BINARY " predict " + t.f.dir() / "jpegs" + model + " --out " + t.f.dir() / "f 2>&1");
  CHECK(nothing.exit_code != 0);
  CHECK_THAT(nothing.output, HasSubstr("jpegs holds no .png/.tif/.tiff images and no .h5 shards"));
}

TEST_CASE("predict --eval: masks found by suffix, values mapped to classes, none found is an error", "[infer][e2e]") {
  Trained t;
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
  const auto mapped =
      run_command(predict + " --masks " + t.f.dir() / "in/masks" + " --mask-suffix _mask --mask-map 0=0,255=1 2>&1");
  INFO(mapped.output);
  CHECK(mapped.exit_code == 0);
  const auto eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "out/eval.json"));
  CHECK(eval["images"] == 1);
  CHECK(eval["aggregation"] == "pooled");
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
  // Images and shards in one folder: which was meant is not guessed.
  std::filesystem::remove(t.f.dir() / "in/images/a.PNG");
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

TEST_CASE("masks beside their images are told apart by their suffix", "[infer]") {
  dpunet::test::TempDir dir;
  dpunet::data::Image image;
  image.height = image.width = 4;
  image.channels = 1;
  image.values.assign(16, 1);
  for (const char* name : {"a.png", "a_mask.png", "b.png", "b_mask.png"}) dpunet::data::write_png(dir / name, image);
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
    CHECK(inputs.load(1).mask.defined());
  }
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
  options.class_of_value = dpunet::data::parse_mask_mapping("0=0,255=ignore");
  options.n_classes = 256;
  CHECK_THROWS_WITH(dpunet::infer::InputSet(dir / "images", options),
                    HasSubstr("--mask-map VALUE=ignore") && HasSubstr("at most 255 classes"));
  options.n_classes = 255;
  CHECK(dpunet::infer::InputSet(dir / "images", options).ignore_label() == 255);
}

TEST_CASE("weights that do not fit, and tiles that do not suit the model, are errors", "[infer][e2e]") {
  Trained t;
  REQUIRE(run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.f.dir() / "w.safetensors").exit_code == 0);
  const std::string val = t.f.dir() / "data/val-*.h5";
  const auto wrong = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                                 " --n-classes 2 --out " + t.f.dir() / "x 2>&1");
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.output, HasSubstr("do not fit the model") && HasSubstr("outc.conv.weight"));
  const auto sigmoid = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                                   " --n-classes 1 --out " + t.f.dir() / "x 2>&1");
  CHECK(sigmoid.exit_code != 0);
  CHECK_THAT(sigmoid.output, HasSubstr("--n-classes must be in [2, 256], got 1") && HasSubstr("one sigmoid output"));
  const auto tile = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint + " --out " +
                                t.f.dir() / "y --tile 3 2>&1");
  CHECK(tile.exit_code != 0);
  CHECK_THAT(tile.output, HasSubstr("--tile 3 does not suit this model") && HasSubstr("nearest valid sizes"));
  // A learning rate far below the weights' rounding: a step leaves them as they started.
  const std::string still = " --set optimizer.lr=1e-30";
  const auto init = t.f.train(1, t.f.write_config() + " --init-weights " + t.f.dir() / "w.safetensors" +
                                     " --set run.dir=" + t.f.dir() / "run2 --stop-at-step 1" + still);
  INFO(init.output);
  CHECK(init.exit_code == 0);
  CHECK_THAT(init.output, HasSubstr("initial weights from"));
  dpunet::test::require_same_weights(dpunet::checkpoint::CheckpointStore(t.f.dir() / "run2").path_for_step(1),
                                     t.checkpoint,
                                     /*parameters_only=*/true);
  // A requeued job passes the same arguments again: its own checkpoint comes first.
  const auto requeued = t.f.train(1, t.f.write_config() + " --init-weights " + t.f.dir() / "w.safetensors" +
                                         " --set run.dir=" + t.f.dir() / "run2 --resume auto --stop-at-step 2" + still);
  INFO(requeued.output);
  CHECK(requeued.exit_code == 0);
  CHECK_THAT(requeued.output, HasSubstr("not used: resuming from") && !HasSubstr("initial weights from"));
  // Another run's checkpoint: its model starts the new run.
  const auto from_checkpoint = t.f.train(1, t.f.write_config() + " --init-weights " + t.checkpoint +
                                                " --set run.dir=" + t.f.dir() / "run4 --stop-at-step 1" + still);
  INFO(from_checkpoint.output);
  CHECK(from_checkpoint.exit_code == 0);
  CHECK_THAT(from_checkpoint.output, HasSubstr("a training checkpoint: its model"));
  // Its model, not its step: the new run starts at step 0 and stops after step 1.
  const dpunet::checkpoint::CheckpointStore run4(t.f.dir() / "run4");
  CHECK(run4.list() == std::vector<std::string>{run4.path_for_step(1)});
  dpunet::test::require_same_weights(run4.path_for_step(1), t.checkpoint, /*parameters_only=*/true);
  const auto other_model = t.f.train(1, t.f.write_config() + " --init-weights " + t.checkpoint +
                                            " --set model.base_channels=4 --set run.dir=" + t.f.dir() / "run5");
  CHECK(other_model.exit_code != 0);
  CHECK_THAT(other_model.output, HasSubstr(t.checkpoint) && HasSubstr("inc."));
  const auto both = t.f.train(1, t.f.write_config() + " --init-weights " + t.f.dir() / "w.safetensors" + " --resume " +
                                     t.checkpoint + " --set run.dir=" + t.f.dir() / "run3");
  CHECK(both.exit_code != 0);
  CHECK_THAT(both.output, HasSubstr("give --init-weights or --resume"));
  // A checkpoint describes its own model.
  const auto described = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint +
                                     " --n-classes 2 --out " + t.f.dir() / "z 2>&1");
  CHECK(described.exit_code != 0);
  CHECK_THAT(described.output, HasSubstr("--checkpoint excludes --n-classes"));
}
