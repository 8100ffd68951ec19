// `dpunet predict` and `dpunet export` end to end: checkpoints, run directories and
// exported weights giving the same masks, outputs that would overwrite their inputs,
// the options that reach the computation, and weights that do not fit the model.
#include <torch/torch.h>
#include "support/catch.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "checkpoint/store.h"
#include "checkpoint/weights.h"
#include "common/atomic_file.h"
#include "config/config.h"
#include "data/image_io.h"
#include "model/unet.h"
#include "support/prediction_fixture.h"
#include "train/setup.h"

using dpunet::test::predict_into;
using dpunet::test::probabilities_of;
using dpunet::test::read_mask;
using dpunet::test::read_prediction;
using dpunet::test::run_command;
using dpunet::test::TrainedModel;
using dpunet::test::TrainFixture;
using dpunet::test::write_changed_weights;

TEST_CASE("predict from a checkpoint and from exported weights gives the same masks", "[infer][e2e]") {
  TrainedModel t;
  const std::string val = t.f.dir() / "data/val-*.h5";
  const auto exported = run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.f.dir() / "w.safetensors 2>&1");
  INFO(exported.output);
  REQUIRE(exported.exit_code == 0);
  // The scaling its inputs need, with the training set's statistics: a PyTorch user's cue.
  CHECK_THAT(exported.output,
             HasSubstr("export: inputs: (v - mean) / std per channel, in stored pixel units, mean [") &&
                 HasSubstr("(also in the file's dpunet_config metadata)"));
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

TEST_CASE("predict refuses ranks that read different model files", "[infer][e2e]") {
  TrainedModel t;
  // As when a run's best pointer moves between two ranks' readings of it: an MPMD launch
  // gives each rank its own checkpoint.
  const std::string older = std::filesystem::path(t.checkpoint).parent_path() / "step-00000006.ckpt";
  REQUIRE(std::filesystem::exists(older));
  const std::string predict = DPUNET_BINARY " predict '" + t.f.dir() / "data/val-*.h5" + "' --tile 32 --no-png --out " +
                              t.f.dir() / "out --checkpoint ";
  const auto run = run_command("OMP_NUM_THREADS=1 timeout 120 " DPUNET_MPI_LAUNCHER " 1 " + predict + t.checkpoint +
                               " : -np 1 " + predict + older + " 2>&1");
  INFO(run.output);
  CHECK(run.exit_code != 0);
  CHECK(run.exit_code != 124);
  CHECK_THAT(run.output, HasSubstr("the model file differs between ranks: rank 0 sees step-00000008.ckpt (CRC-32 ") &&
                             HasSubstr("(rank 1: step-00000006.ckpt (CRC-32 "));
  CHECK_THAT(run.output, !HasSubstr("MPI_ABORT"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "out/predictions-rank000.h5"));
  // Weights files of one name and size, exported from two steps: told apart by their bytes.
  for (const auto& [step, folder] : {std::pair<std::string, std::string>{t.checkpoint, "new"}, {older, "old"}}) {
    std::filesystem::create_directories(t.f.dir() / folder);
    REQUIRE(run_command(DPUNET_BINARY " export " + step + " " + t.f.dir() / folder + "/w.safetensors").exit_code == 0);
  }
  REQUIRE(std::filesystem::file_size(t.f.dir() / "new/w.safetensors") ==
          std::filesystem::file_size(t.f.dir() / "old/w.safetensors"));
  const std::string weights = DPUNET_BINARY " predict '" + t.f.dir() / "data/val-*.h5" + "' --tile 32 --no-png --out " +
                              t.f.dir() / "out --weights ";
  const auto exported =
      run_command("OMP_NUM_THREADS=1 timeout 120 " DPUNET_MPI_LAUNCHER " 1 " + weights +
                  t.f.dir() / "new/w.safetensors : -np 1 " + weights + t.f.dir() / "old/w.safetensors 2>&1");
  INFO(exported.output);
  CHECK(exported.exit_code != 0);
  CHECK_THAT(exported.output, HasSubstr("the model file differs between ranks: rank 0 sees w.safetensors (CRC-32 "));
}

TEST_CASE("predict and export refuse to write over their own inputs", "[infer][e2e]") {
  TrainedModel t;
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
  // A run stopped before it wrote a file it listed (an error in its first image) left only
  // its manifest: nothing to keep, so the corrected command runs without --overwrite.
  const std::string fresh = t.f.dir() / "fresh";
  std::filesystem::create_directories(fresh);
  dpunet::write_file_atomically(fresh + "/predict-files.txt",
                                "# dpunet predict: files written\npredictions.h5.partial\npredictions.h5\n");
  const auto rerun = run_command(DPUNET_BINARY " predict '" + data + "/val-*.h5' --checkpoint " + t.checkpoint +
                                 " --tile 32 --no-png --out " + fresh + " 2>&1");
  INFO(rerun.output);
  CHECK(rerun.exit_code == 0);
  CHECK(std::filesystem::exists(fresh + "/predictions.h5"));
  const auto size_before = std::filesystem::file_size(t.checkpoint);
  const auto over_checkpoint = run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.checkpoint + " 2>&1");
  CHECK(over_checkpoint.exit_code != 0);
  CHECK_THAT(over_checkpoint.output, HasSubstr("name the output file *.safetensors"));  // before the checkpoint is read
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
  TrainedModel t;
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
    const auto relative = run_command("cd " + folder + " && " DPUNET_BINARY " export --overwrite " + argument + " " +
                                      t.f.dir() / "relative.safetensors 2>&1");
    INFO(folder << " " << argument << ": " << relative.output);
    CHECK(relative.exit_code == 0);
    CHECK(dpunet::read_file(t.f.dir() / "relative.safetensors") ==
          dpunet::read_file(t.f.dir() / (same_as + ".safetensors")));
  }
  // An existing file is kept unless --overwrite is given.
  const std::string latest_weights = dpunet::read_file(t.f.dir() / "c.safetensors");
  const auto again = run_command(DPUNET_BINARY " export " + run + " " + t.f.dir() / "c.safetensors 2>&1");
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.output,
             HasSubstr(t.f.dir() / "c.safetensors") && HasSubstr("already exists") && HasSubstr("--overwrite"));
  CHECK(dpunet::read_file(t.f.dir() / "c.safetensors") == latest_weights);
  const auto replaced = run_command(DPUNET_BINARY " export --overwrite " + run + " " + t.f.dir() / "c.safetensors");
  CHECK(replaced.exit_code == 0);
  CHECK(dpunet::read_file(t.f.dir() / "c.safetensors") == dpunet::read_file(t.f.dir() / "a.safetensors"));
  const auto not_a_run = run_command(DPUNET_BINARY " export " + t.f.dir() / "data " + t.f.dir() / "d.safetensors 2>&1");
  CHECK(not_a_run.exit_code != 0);
  CHECK_THAT(not_a_run.output, HasSubstr("neither a run directory"));
  const auto swapped = run_command(DPUNET_BINARY " predict '" + t.f.dir() / "data/val-*.h5" + "' --weights " +
                                   t.checkpoint + " --out " + t.f.dir() / "p 2>&1");
  CHECK(swapped.exit_code != 0);
  CHECK_THAT(swapped.output, HasSubstr("is a dpunet training checkpoint") && HasSubstr("--checkpoint"));
  const auto reversed =
      run_command(DPUNET_BINARY " export " + t.f.dir() / "a.safetensors " + t.f.dir() / "e.safetensors 2>&1");
  CHECK(reversed.exit_code != 0);
  CHECK_THAT(
      reversed.output,
      HasSubstr("looks like safetensors weights, which predict takes with --weights and train with --init-weights"));
}

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

TEST_CASE("a model trained with min_memory checkpointing predicts as the same weights in a model that concatenates",
          "[infer][e2e]") {
  // min_memory splits the skip convolutions in training (last bits differ from the
  // concatenation); prediction keeps nothing for a backward, so it always concatenates.
  TrainFixture f;
  const auto run = f.train(1, f.write_config("model:\n  checkpointing: min_memory\n"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const std::string checkpoint = dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(8);
  const auto exported = run_command(DPUNET_BINARY " export " + checkpoint + " " + f.dir() / "w.safetensors 2>&1");
  REQUIRE(exported.exit_code == 0);
  write_changed_weights(f.dir() / "w.safetensors", f.dir() / "plain.safetensors",
                        [](dpunet::config::Config& c) { c.model.checkpointing = "none"; });
  for (const char* out : {"from_checkpoint", "plain"}) {
    const std::string models =
        std::string(out) == "plain" ? "--weights " + f.dir() / "plain.safetensors" : "--checkpoint " + checkpoint;
    const auto predicted = predict_into(f, models, out);
    INFO(predicted.output);
    REQUIRE(predicted.exit_code == 0);
  }
  for (int i = 0; i < 6; ++i) {
    INFO("sample " << i);
    CHECK(torch::equal(probabilities_of(f, "from_checkpoint", i), probabilities_of(f, "plain", i)));
  }
}

TEST_CASE("predict's --overlap, --normalization and --bilinear change what it computes", "[infer][e2e]") {
  TrainedModel t;
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
  const auto too_much = predict_into(t.f, model, "too-much", "--overlap 0.95");
  CHECK(too_much.exit_code == 105);  // refused as the command line is read, before a model is
  CHECK_THAT(too_much.output, HasSubstr("--overlap") && HasSubstr("from 0 to 0.9, got 0.95"));
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

TEST_CASE("weights that do not fit, and tiles that do not suit the model, are errors", "[infer][e2e]") {
  TrainedModel t;
  REQUIRE(run_command(DPUNET_BINARY " export " + t.checkpoint + " " + t.f.dir() / "w.safetensors").exit_code == 0);
  const std::string val = t.f.dir() / "data/val-*.h5";
  const auto wrong = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                                 " --n-classes 2 --out " + t.f.dir() / "x 2>&1");
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.output, HasSubstr("do not fit the model") && HasSubstr("outc.conv.weight"));
  // The two models said first, in the config's terms, and what to give.
  CHECK_THAT(wrong.output, HasSubstr("classes, base_channels") && HasSubstr("; the model built has ") &&
                               HasSubstr(" 2 classes,") && HasSubstr("--config with the config of the run"));
  const auto sigmoid = run_command(DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                                   " --n-classes 1 --out " + t.f.dir() / "x 2>&1");
  CHECK(sigmoid.exit_code != 0);
  CHECK_THAT(sigmoid.output, HasSubstr("--n-classes must be in [2, 256], got 1") && HasSubstr("one sigmoid output"));
  const auto tile = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint + " --out " +
                                t.f.dir() / "y --tile 3 2>&1");
  CHECK(tile.exit_code != 0);
  CHECK_THAT(tile.output, HasSubstr("--tile 3 does not suit this model") && HasSubstr("nearest valid sizes"));
  // Not taken for "the training patch size", which only leaving --tile out asks for.
  const auto no_tile = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint + " --out " +
                                   t.f.dir() / "y --tile 0 2>&1");
  CHECK(no_tile.exit_code != 0);
  CHECK_THAT(no_tile.output, HasSubstr("--tile: must be a whole number of at least 1, got 0"));
  // A --config describing the weights is not held to a training recipe: a patch size
  // this model cannot tile is no matter with a --tile that it can (the same weights,
  // valid-padded: unpadded convolutions have the same shapes).
  dpunet::write_file_atomically(t.f.dir() / "model.yaml",
                                "model: {n_classes: 3, base_channels: 8, depth: 2, norm: batch, padding: valid}\n"
                                "augment: {patch_size: 30}\n");
  CHECK_THROWS_WITH(dpunet::config::load_config(t.f.dir() / "model.yaml"), HasSubstr("a 30 px patch cannot be tiled"));
  const std::string with_config = DPUNET_BINARY " predict '" + val + "' --weights " + t.f.dir() / "w.safetensors" +
                                  " --config " + t.f.dir() / "model.yaml" + " --no-png --out " +
                                  t.f.dir() / "described";
  const auto with_tile = run_command(with_config + " --tile 44 2>&1");
  INFO(with_tile.output);
  CHECK(with_tile.exit_code == 0);
  // Left to the config's patch size, the tile is refused as a tile, naming the valid ones.
  const auto config_tile = run_command(with_config + "-default 2>&1");
  CHECK(config_tile.exit_code != 0);
  CHECK_THAT(config_tile.output,
             HasSubstr("the tile of 30 (the training patch size") && HasSubstr("nearest valid sizes"));
  // Its keys are still checked: a typo is refused by name.
  dpunet::write_file_atomically(t.f.dir() / "model.yaml", "model: {n_clases: 3}\n");
  const auto typo = run_command(with_config + "-typo --tile 44 2>&1");
  CHECK(typo.exit_code != 0);
  CHECK_THAT(typo.output, HasSubstr("model.n_clases: unknown key"));
  // A file of another kind is said as such, not as a damaged HDF5 file.
  dpunet::write_file_atomically(t.f.dir() / "photo.jpg", std::string("\xff\xd8\xff\xe0\x00\x10JFIF", 10));
  const auto photo = run_command(DPUNET_BINARY " predict " + t.f.dir() / "photo.jpg" + " --checkpoint " + t.checkpoint +
                                 " --out " + t.f.dir() / "y 2>&1");
  CHECK(photo.exit_code != 0);
  CHECK_THAT(photo.output, HasSubstr("photo.jpg: neither a .png/.tif/.tiff image nor an HDF5 shard"));
  // A .txt index of shards is no such file.
  dpunet::write_file_atomically(t.f.dir() / "index.txt", t.f.dir() / "data/val-00000.h5\n");
  const auto index = run_command(DPUNET_BINARY " predict " + t.f.dir() / "index.txt" + " --checkpoint " + t.checkpoint +
                                 " --no-png --out " + t.f.dir() / "from-index 2>&1");
  INFO(index.output);
  CHECK(index.exit_code == 0);
  const auto no_batch = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint + " --out " +
                                    t.f.dir() / "y --batch 0 2>&1");
  CHECK(no_batch.exit_code != 0);
  CHECK_THAT(no_batch.output, HasSubstr("--batch: must be a whole number of at least 1, got 0"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "y"));
  // InstanceNorm zeroes a 1x1 map in inference too: a 4 px tile at the bottom of depth 2.
  const auto instance = dpunet::config::parse_config(
      "", "i.yaml", {"model.n_classes=3", "model.base_channels=8", "model.depth=2", "model.norm=instance"});
  const dpunet::model::Unet fresh(dpunet::train::unet_options(instance, nullptr));
  const std::string instance_weights = t.f.dir() / "instance.safetensors";
  dpunet::checkpoint::write_safetensors(instance_weights, dpunet::checkpoint::module_state(*fresh),
                                        {{"format", "pt"}, {"dpunet_config", dpunet::config::to_yaml(instance)}});
  auto predict_tile = [&](const std::string& tile) {
    return run_command(DPUNET_BINARY " predict '" + val + "' --weights " + instance_weights + " --no-png --out " +
                       t.f.dir() / ("tile" + tile) + " --tile " + tile + " 2>&1");
  };
  const auto zeroed = predict_tile("4");
  CHECK(zeroed.exit_code != 0);
  CHECK_THAT(zeroed.output, HasSubstr("--tile 4: the depth-2 U-Net's bottom map is 1x1, which InstanceNorm would "
                                      "zero whatever it held; give a larger --tile"));
  const auto two_by_two = predict_tile("8");
  INFO(two_by_two.output);
  CHECK(two_by_two.exit_code == 0);
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
  // --print-config refuses the same, rather than print a config training would not start.
  const auto printed = t.f.train(1, t.f.write_config() + " --print-config --init-weights " +
                                        t.f.dir() / "w.safetensors" + " --resume " + t.checkpoint);
  CHECK(printed.exit_code == 2);
  CHECK_THAT(printed.output, HasSubstr("give --init-weights or --resume"));
  // An empty path (an unset variable in a script) is refused, not taken for "none".
  const auto empty = t.f.train(1, t.f.write_config() + " --init-weights '' --set run.dir=" + t.f.dir() / "run6");
  CHECK(empty.exit_code != 0);
  CHECK_THAT(empty.output, HasSubstr("--init-weights") && HasSubstr("empty (an unset variable?)"));
  // As are predict's and export's paths.
  for (const std::string& command : {"predict " + t.f.dir().path() + " --checkpoint '' --out " + t.f.dir() / "p",
                                     "predict " + t.f.dir().path() + " --checkpoint " + t.checkpoint + " --out ''",
                                     "export '' " + t.f.dir() / "e.safetensors", "export " + t.checkpoint + " ''"}) {
    const auto unset = dpunet::test::run_command(DPUNET_BINARY " " + command + " 2>&1");
    INFO(command << ": " << unset.output);
    CHECK(unset.exit_code != 0);
    CHECK_THAT(unset.output, HasSubstr("empty (an unset variable?)"));
  }
  // Neither a checkpoint nor weights: said so, not a safetensors parse error of a config.
  const auto config_as_weights = t.f.train(
      1, t.f.write_config() + " --init-weights " + t.f.write_config() + " --set run.dir=" + t.f.dir() / "run8");
  CHECK(config_as_weights.exit_code != 0);
  CHECK_THAT(config_as_weights.output, HasSubstr("not a safetensors file"));
  // A run directory names its best checkpoint, as for predict and export.
  const auto from_run = t.f.train(1, t.f.write_config() + " --init-weights " + t.f.run_dir() +
                                         " --set run.dir=" + t.f.dir() / "run7 --stop-at-step 1" + still);
  INFO(from_run.output);
  CHECK(from_run.exit_code == 0);
  CHECK_THAT(from_run.output, HasSubstr("initial weights from " + t.f.run_dir()) && HasSubstr("the best of"));
  // Another run's checkpoint continued into a new run.dir, named by its `latest` pointer:
  // that run's best stays with it, and this run marks its own.
  const auto continued = t.f.train(1, t.f.write_config() + " --resume " + t.f.run_dir() + "/checkpoints/latest" +
                                          " --set run.dir=" + t.f.dir() / "run8 --set train.steps=12");
  INFO(continued.output);
  CHECK(continued.exit_code == 0);
  CHECK_THAT(continued.output,
             HasSubstr("resumed from") && HasSubstr("is not this run directory's own: its best score"));
  CHECK(dpunet::checkpoint::CheckpointStore(t.f.dir() / "run8").best().has_value());
  // Shards hold class ids: a mask mapping for them would be ignored, so it is refused.
  const auto mapped = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint +
                                  " --eval --mask-map 0=0,1=2 --out " + t.f.dir() / "m 2>&1");
  CHECK(mapped.exit_code != 0);
  CHECK_THAT(mapped.output, HasSubstr("--mask-map is for image inputs' masks"));
  // A checkpoint describes its own model.
  const auto described = run_command(DPUNET_BINARY " predict '" + val + "' --checkpoint " + t.checkpoint +
                                     " --n-classes 2 --out " + t.f.dir() / "z 2>&1");
  CHECK(described.exit_code != 0);
  CHECK_THAT(described.output, HasSubstr("--checkpoint excludes --n-classes"));
}
