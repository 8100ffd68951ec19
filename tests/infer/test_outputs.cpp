// PredictionWriter: overlays give every class a visible colour of its own, also past the
// named ones; probabilities written band by band read back whole, and an image stopped
// half way, or whose writing fails, leaves no trace in the kept file.
#include <torch/torch.h>
#include "support/catch.h"

#include <hdf5.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <set>
#include <tuple>

#include "common/atomic_file.h"
#include "data/image_io.h"
#include "infer/output_manifest.h"
#include "infer/outputs.h"
#include "support/prediction_fixture.h"
#include "support/temp_dir.h"

TEST_CASE("overlay colours stay distinct and visible for many classes", "[infer]") {
  dpunet::test::TempDir dir;
  constexpr int64_t kClasses = 40;
  dpunet::infer::PredictionWriter writer({dir.path(), false, true}, 0, 1, kClasses);
  // One pixel per class on a black image: the overlay shows 45% of each class's colour.
  torch::Tensor probabilities = torch::zeros({kClasses, 1, kClasses});
  for (int64_t k = 0; k < kClasses; ++k) probabilities[k][0][k] = 1;
  writer.start("classes", 1, kClasses);
  writer.write("classes", probabilities.argmax(0).to(torch::kByte), torch::zeros({1, 1, kClasses}, torch::kByte));
  writer.finish();
  const dpunet::data::Image overlay = dpunet::data::read_image(dir / "classes_overlay.png");
  std::set<std::tuple<int, int, int>> colours;
  for (int64_t k = 1; k < kClasses; ++k) {
    const auto* v = overlay.values.data() + k * 3;
    INFO("class " << k);
    CHECK(v[0] + v[1] + v[2] > 60);  // not black
    colours.emplace(v[0], v[1], v[2]);
  }
  CHECK(colours.size() == kClasses - 1);
}

TEST_CASE("probabilities written band by band read back whole, and a half-written image is not kept", "[infer]") {
  dpunet::test::TempDir dir;
  const torch::Tensor probabilities = torch::softmax(torch::randn({3, 23, 11}), 0);
  const torch::Tensor labels = probabilities.argmax(0).to(torch::kByte);
  const torch::Tensor raw = torch::zeros({1, 23, 11}, torch::kByte);
  {
    dpunet::infer::PredictionWriter writer({dir.path(), true, false}, 0, 1, 3);
    writer.start("whole", 23, 11);
    CHECK_THROWS_WITH(writer.write_probabilities(5, probabilities.slice(1, 5, 10)), HasSubstr("do not follow on"));
    for (int64_t row : {0, 7, 8, 20}) {
      const int64_t end = row == 0 ? 7 : row == 7 ? 8 : row == 8 ? 20 : 23;
      writer.write_probabilities(row, probabilities.slice(1, row, end));
    }
    writer.write("whole", labels, raw);
    writer.start("half", 23, 11);
    writer.write_probabilities(0, probabilities.slice(1, 0, 9));
    CHECK_THROWS_WITH(writer.write("half", labels, raw), HasSubstr("only 9 of 23 rows"));
    // Destroyed here, as by an error: the first image is kept in the .partial file.
  }
  const std::string kept = dir / "predictions.h5.partial";
  CHECK(torch::equal(dpunet::test::read_prediction(kept, "whole/probabilities", torch::kFloat), probabilities));
  CHECK(torch::equal(dpunet::test::read_prediction(kept, "whole/mask", torch::kByte), labels));
  const hid_t file = H5Fopen(kept.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  CHECK(H5Lexists(file, "half", H5P_DEFAULT) == 0);
  H5Fclose(file);
}

TEST_CASE("an image whose mask cannot be written (a full disk) leaves nothing in the kept file", "[infer]") {
  dpunet::test::TempDir dir;
  const torch::Tensor small = torch::ones({8, 8}, torch::kByte), large = torch::ones({1024, 1024}, torch::kByte);
  // A child process with a file size limit stands in for the full disk: its writes past
  // 256 KiB fail (EFBIG), as a full disk's do (ENOSPC).
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{256 * 1024, 256 * 1024};
    setrlimit(RLIMIT_FSIZE, &limit);
    int code = 2;
    try {
      dpunet::infer::PredictionWriter writer({dir.path(), false, false}, 0, 1, 2);
      writer.start("a", 8, 8);
      writer.write("a", small, small.unsqueeze(0));
      writer.start("z", 1024, 1024);
      writer.write("z", large, large.unsqueeze(0));
    } catch (const std::exception& e) {
      // The system's reason, without HDF5's account of the call (time, buffer, sizes).
      const std::string what = e.what();
      code = what.find("z/mask") != std::string::npos && what.find("File too large") != std::string::npos &&
                     what.find("time =") == std::string::npos
                 ? 0
                 : 3;
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const std::string kept = dir / "predictions.h5.partial";
  CHECK(torch::equal(dpunet::test::read_prediction(kept, "a/mask", torch::kByte), small));
  const hid_t file = H5Fopen(kept.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  CHECK(H5Lexists(file, "z", H5P_DEFAULT) == 0);
  H5Fclose(file);
}

TEST_CASE("a prediction folder's files are told apart: listed, a listed file's temporary, and others", "[infer]") {
  dpunet::test::TempDir dir;
  {
    dpunet::infer::OutputManifest manifest(dir.path(), /*rank=*/0, /*world_size=*/1);
    manifest.add("a_mask.png");
    dpunet::write_file_atomically(dir / "a_mask.png", "png");
    manifest.written("a_mask.png");
    manifest.add("b_overlay.png");  // killed while writing it: its temporary is left
  }
  dpunet::write_file_atomically(dir / "b_overlay.png.tmp.4242", "half");
  dpunet::write_file_atomically(dir / "c_mask.png", "someone else's");
  dpunet::write_file_atomically(dir / "notes.txt", "the user's");
  const dpunet::infer::EarlierOutputs earlier = dpunet::infer::find_earlier_outputs(dir.path());
  CHECK(earlier.written ==
        std::vector<std::string>{dir / "a_mask.png", dir / "b_overlay.png.tmp.4242", dir / "predict-files.txt"});
  CHECK(earlier.unlisted == std::vector<std::string>{dir / "c_mask.png"});
  // Killed inside its first file: nothing of that run to keep (no --overwrite needed), its
  // temporary included; a hidden copy's sidecar is no one's output.
  dpunet::test::TempDir first;
  { dpunet::infer::OutputManifest(first.path(), 0, 1).add("a_mask.png"); }
  dpunet::write_file_atomically(first / "a_mask.png.tmp.4242", "half");
  dpunet::write_file_atomically(first / "._b_mask.png", "resource data");
  const dpunet::infer::EarlierOutputs killed = dpunet::infer::find_earlier_outputs(first.path());
  CHECK(killed.written.empty());
  CHECK(killed.unlisted.empty());
  CHECK(killed.empty == std::vector<std::string>{first / "a_mask.png.tmp.4242", first / "predict-files.txt"});
}
