// `dpunet predict` on PNG/TIFF folders: masks beside the images, images shared over
// ranks that must agree on the list, and inputs scaled with the training set's statistics.
#include <hdf5.h>
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/normalize.h"
#include "support/image_files.h"
#include "support/prediction_fixture.h"

using dpunet::test::read_mask;
using dpunet::test::run_command;
using dpunet::test::TrainedModel;

TEST_CASE("predict reads PNG folders with masks, and shares images over ranks", "[infer][e2e]") {
  TrainedModel t;
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
  // Dealt by size: the largest (im2) to rank 0, then im1 and im0 to rank 1; each image
  // said as it is written.
  CHECK_THAT(run.output,
             HasSubstr("rank 0: im2: 1/1, ") && HasSubstr("rank 1: im0: 1/2, ") && HasSubstr("rank 1: im1: 2/2, "));
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
  TrainedModel t;
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
  CHECK_THAT(alone.output, HasSubstr("2 image(s) -> "));
  CHECK(read_mask(t.f.dir() / "out/predictions.h5", "c").size(0) == 32);
  // A glob over several folders: the masks in each are left out, and none of the folders
  // may take the outputs.
  for (const char* name : {"g/x/p.png", "g/x/p_mask.png", "g/y/q.png", "g/y/q_mask.png"}) {
    std::filesystem::create_directories((t.f.dir() / name).substr(0, (t.f.dir() / name).rfind('/')));
    dpunet::data::write_png(t.f.dir() / name, image);
  }
  const std::string globbed = DPUNET_BINARY " predict '" + t.f.dir() / "g/*/*.png' --mask-suffix _mask --checkpoint " +
                              t.checkpoint + " --tile 32 --no-png --out ";
  const auto across = run_command(globbed + t.f.dir() / "across 2>&1");
  INFO(across.output);
  REQUIRE(across.exit_code == 0);
  CHECK_THAT(across.output, HasSubstr("2 image(s) -> "));
  const auto into_inputs = run_command(globbed + t.f.dir() / "g/y 2>&1");
  CHECK(into_inputs.exit_code != 0);
  CHECK_THAT(into_inputs.output, HasSubstr("is the folder of the inputs or masks (" + t.f.dir() / "g/y)"));
}

TEST_CASE("predict scales shards and image files alike, with the training set's statistics", "[infer][e2e]") {
  TrainedModel t;
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
    // The probabilities too: a scaling slightly off would rarely flip a class.
    const int sample = static_cast<int>(i);
    CHECK(torch::equal(dpunet::test::probabilities_of(t.f, "a", sample),
                       dpunet::test::probabilities_of(t.f, "b", sample)));
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

TEST_CASE("an error late in a folder keeps the predictions made before it", "[infer][e2e]") {
  TrainedModel t;
  const std::string images = t.f.dir() / "late";
  std::filesystem::create_directories(images);
  dpunet::data::Image image;
  image.height = image.width = 32;
  image.channels = 1;
  for (int64_t p = 0; p < 32 * 32; ++p) image.values.push_back(static_cast<uint16_t>((p * 5) % 250));
  dpunet::data::write_png(images + "/a.png", image);
  dpunet::data::write_png(images + "/b.png", image);
  const std::string whole = dpunet::read_file(images + "/a.png");
  dpunet::write_file_atomically(images + "/c.png", whole.substr(0, whole.size() / 2));  // cut short
  const auto run = run_command("OMP_NUM_THREADS=1 " DPUNET_BINARY " predict " + images + " --checkpoint " +
                               t.checkpoint + " --out " + t.f.dir() / "late-out 2>&1");
  INFO(run.output);
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, HasSubstr("c.png") && HasSubstr("the 2 image(s) predicted before the error are kept in"));
  const std::string kept = t.f.dir() / "late-out/predictions.h5.partial";
  CHECK(read_mask(kept, "a").size(0) == 32);
  CHECK(read_mask(kept, "b").size(0) == 32);

  // What the headers show comes before any image is predicted: an image of other channels,
  // and with --eval a mask of another size.
  const std::string early = t.f.dir() / "early";
  std::filesystem::create_directories(early + "/masks");
  dpunet::data::write_png(early + "/a.png", image);
  dpunet::data::Image colour = image;
  colour.channels = 3;
  colour.values.assign(32 * 32 * 3, 7);
  dpunet::data::write_png(early + "/b.png", colour);
  const std::string on_early = "OMP_NUM_THREADS=1 " DPUNET_BINARY " predict " + early + " --checkpoint " +
                               t.checkpoint + " --no-png --out " + t.f.dir() / "early-out";
  const auto channels = run_command(on_early + " 2>&1");
  CHECK(channels.exit_code != 0);
  CHECK_THAT(channels.output, HasSubstr("b.png: 3 channels, but ") && HasSubstr("a.png has 1"));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "early-out/predictions.h5.partial"));
  // The colour image alone, for the grey model: said with what reads as colour.
  const auto colour_only = run_command(DPUNET_BINARY " predict " + early + "/b.png --checkpoint " + t.checkpoint +
                                       " --no-png --out " + t.f.dir() / "colour-out 2>&1");
  CHECK(colour_only.exit_code != 0);
  CHECK_THAT(colour_only.output, HasSubstr("b.png: images have 3 channels, the model takes 1 (palette and RGBA"));
  dpunet::data::write_png(early + "/b.png", image);
  dpunet::data::Image small_mask = image;
  small_mask.height = 16;
  small_mask.values.assign(16 * 32, 0);
  dpunet::data::Image zeros = image;  // a mask the mapping reads: a.png alone would predict
  zeros.values.assign(32 * 32, 0);
  dpunet::data::write_png(early + "/masks/a.png", zeros);
  dpunet::data::write_png(early + "/masks/b.png", small_mask);
  const auto mask_size = run_command(on_early + " --eval --masks " + early + "/masks --mask-map 0=0,9=1 2>&1");
  CHECK(mask_size.exit_code != 0);
  CHECK_THAT(mask_size.output, HasSubstr("masks/b.png: the mask is 32x16, the image "));
  CHECK_FALSE(std::filesystem::exists(t.f.dir() / "early-out/predictions.h5.partial"));

  // A full disk: one error, and the process ends with it (HDF5's exit cleanup crashed on
  // the dataset whose write had failed). A 400 KiB filesystem of its own where user
  // namespaces allow one; else a file size limit (4 MiB: above what MPI's start writes)
  // gives the same error, though not that crash.
  const std::string disk = t.f.dir() / "disk";
  std::filesystem::create_directories(disk);
  const std::string mount = "unshare -rm sh -c \"mount -t tmpfs -o size=400k tmpfs " + disk;
  const bool own_mount = run_command(mount + "\" 2>&1").exit_code == 0;
  if (!own_mount) WARN("no tmpfs of a user namespace here: a file size limit stands in for the full disk");
  // Probabilities of 0.8 MiB, or 6 MiB past the size limit.
  image.height = own_mount ? 301 : 720;
  image.width = own_mount ? 230 : 720;
  image.values.resize(image.height * image.width);
  std::filesystem::remove(images + "/c.png");
  dpunet::data::write_png(images + "/z.png", image);
  const std::string predict = "OMP_NUM_THREADS=1 " DPUNET_BINARY " predict " + images + " --checkpoint " +
                              t.checkpoint + " --probabilities --no-png --tile 128 --out " + disk + "/out";
  // The kept file is copied out of the filesystem that goes with the namespace.
  const std::string kept_copy = t.f.dir() / "kept.h5";
  const std::string then_copy =
      "; code=\\$?; cp " + disk + "/out/predictions.h5.partial " + kept_copy + "; exit \\$code\" 2>&1";
  const auto full = run_command(own_mount ? mount + " && " + predict + then_copy
                                          : "bash -c \"trap '' XFSZ; ulimit -f 4096; " + predict + then_copy);
  INFO(full.output);
  CHECK(full.exit_code == 1);
  CHECK_THAT(full.output, HasSubstr("z/probabilities") &&
                              (HasSubstr("No space left on device") || HasSubstr("File too large")) &&
                              HasSubstr("the 2 image(s) predicted before the error are kept in"));
  CHECK_THAT(full.output, !HasSubstr("time = "));
  CHECK(read_mask(kept_copy, "b").size(0) == 32);
  const hid_t kept_file = H5Fopen(kept_copy.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(kept_file >= 0);
  CHECK(H5Lexists(kept_file, "z", H5P_DEFAULT) == 0);
  H5Fclose(kept_file);
}

TEST_CASE("one image on several ranks is predicted in bands of rows, as one process predicts it", "[infer][e2e]") {
  TrainedModel t;
  std::filesystem::create_directories(t.f.dir() / "slide/images");
  std::filesystem::create_directories(t.f.dir() / "slide/masks");
  dpunet::data::Image image, mask;
  image.height = mask.height = 150;
  image.width = mask.width = 37;
  image.channels = mask.channels = 1;
  for (int64_t p = 0; p < image.height * image.width; ++p) {
    image.values.push_back(static_cast<uint16_t>((p * 13) % 251));
    mask.values.push_back(static_cast<uint16_t>((p / 37 / 10) % 3));
  }
  dpunet::data::write_png(t.f.dir() / "slide/images/im.png", image);
  dpunet::data::write_png(t.f.dir() / "slide/masks/im.png", mask);
  const auto predict = [&](const std::string& launch, const std::string& out, const std::string& extra = "") {
    return run_command("OMP_NUM_THREADS=1 " + launch + " " DPUNET_BINARY " predict " + t.f.dir() / "slide/images" +
                       " --masks " + t.f.dir() / "slide/masks" + " --checkpoint " + t.checkpoint +
                       " --tile 32 --eval --out " + t.f.dir() / out + " " + extra + " 2>&1");
  };
  // Tiles of 32 rows: three bands of 50 rows, the last two sent to rank 0, which writes.
  const auto split = predict(DPUNET_MPI_LAUNCHER " 3", "split");
  INFO(split.output);
  REQUIRE(split.exit_code == 0);
  CHECK_THAT(split.output, HasSubstr("rank 1: im: rows 50 to 100, to rank 0") &&
                               HasSubstr("rank 2: im: rows 100 to 150, to rank 0") && HasSubstr("rank 0: im: 1/1, ") &&
                               HasSubstr("rank 1: 0 image(s)") && HasSubstr(", and rows of 1 image for other ranks"));
  CHECK(read_mask(t.f.dir() / "split/predictions-rank000.h5", "im").size(0) == 150);
  const auto alone = predict("", "alone");
  INFO(alone.output);
  REQUIRE(alone.exit_code == 0);
  // The same mask, overlay, stored mask and scores, byte for byte.
  for (const char* file : {"im_mask.png", "im_overlay.png"}) {
    INFO(file);
    CHECK(dpunet::read_file(t.f.dir() / ("split/" + std::string(file))) ==
          dpunet::read_file(t.f.dir() / ("alone/" + std::string(file))));
  }
  CHECK(torch::equal(read_mask(t.f.dir() / "split/predictions-rank000.h5", "im"),
                     read_mask(t.f.dir() / "alone/predictions.h5", "im")));
  const auto split_eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "split/eval.json"));
  const auto alone_eval = nlohmann::json::parse(dpunet::read_file(t.f.dir() / "alone/eval.json"));
  CHECK(split_eval["per_image"] == alone_eval["per_image"]);
  CHECK(split_eval["dice"] == alone_eval["dice"]);
  // Stored probabilities are not cut: one rank predicts the image whole.
  const auto whole = predict(DPUNET_MPI_LAUNCHER " 2", "whole", "--probabilities");
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);
  CHECK_THAT(whole.output, HasSubstr("rank 0: im: 1/1, ") && !HasSubstr("to rank 0"));
  CHECK(dpunet::read_file(t.f.dir() / "whole/im_mask.png") == dpunet::read_file(t.f.dir() / "alone/im_mask.png"));
}
