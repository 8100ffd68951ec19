// PredictionWriter: overlays give every class a visible colour of its own, also past the
// named ones; probabilities written band by band read back whole, and an image stopped
// half way leaves no trace in the kept file.
#include <torch/torch.h>
#include "support/catch.h"

#include <hdf5.h>

#include <set>
#include <tuple>

#include "data/image_io.h"
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
