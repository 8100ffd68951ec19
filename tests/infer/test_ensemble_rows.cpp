// An ensemble's rows: models that tile the image differently are averaged row by row as
// each has finished them, giving the average of their whole-image predictions; a model's
// error names it.
#include <torch/torch.h>
#include "support/catch.h"

#include <memory>
#include <vector>

#include "infer/ensemble_rows.h"
#include "support/top_down_rows.h"

using dpunet::infer::EnsembleMember;
using dpunet::infer::EnsembleRows;
using dpunet::infer::TiledPrediction;
using dpunet::infer::TileOptions;

namespace {

// A convolution with random weights, valid-padded by `margin`: another model per seed.
dpunet::infer::Forward convolution(int64_t margin, int seed) {
  torch::manual_seed(seed);
  const torch::Tensor kernel = torch::randn({3, 1, 2 * margin + 1, 2 * margin + 1}) * 0.3;
  return [kernel](const torch::Tensor& x) { return torch::conv2d(x, kernel); };
}

TileOptions tiles(int64_t output, int64_t margin, double overlap, int64_t batch) {
  TileOptions o;
  o.output_tile = output;
  o.input_tile = output + 2 * margin;
  o.overlap = overlap;
  o.batch = batch;
  return o;
}

}  // namespace

TEST_CASE("an ensemble of differently tiled models averages their predictions row by row", "[infer]") {
  torch::manual_seed(0);
  const torch::Tensor image = torch::randn({1, 300, 41});
  const auto a = convolution(0, 1), b = convolution(5, 2), c = convolution(2, 3);
  const TileOptions ta = tiles(24, 0, 0.5, 2), tb = tiles(40, 5, 0.25, 3), tc = tiles(16, 2, 0.0, 1);
  // Another copy of the image for c, as a model trained on other statistics sees it.
  const torch::Tensor brighter = image * 1.5 + 0.2;
  // a and b read one input from the top down, each at its own pace.
  const auto shared =
      std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
  std::vector<EnsembleMember> members;
  members.push_back({"model a", TiledPrediction(a, shared, ta)});
  members.push_back({"model b", TiledPrediction(b, shared, tb)});
  members.push_back({"model c", TiledPrediction(c, brighter, tc)});
  EnsembleRows rows(std::move(members));
  REQUIRE(rows.height() == 300);
  REQUIRE(rows.width() == 41);
  torch::Tensor averaged = torch::full({3, 300, 41}, -1.0f);
  int64_t next_row = 0, bands = 0;
  while (!rows.done()) {
    const auto band = rows.next();
    REQUIRE(band.row == next_row);
    REQUIRE(band.probabilities.size(1) > 0);
    next_row += band.probabilities.size(1);
    averaged.slice(1, band.row, next_row).copy_(band.probabilities);
    ++bands;
  }
  CHECK(next_row == 300);
  CHECK(bands > 3);
  CHECK(shared->most_rows_held() < 200);  // the rows both still read, not the image
  const torch::Tensor expected =
      (dpunet::infer::predict_probabilities(a, image, ta) + dpunet::infer::predict_probabilities(b, image, tb) +
       dpunet::infer::predict_probabilities(c, brighter, tc)) /
      3.0;
  CHECK(torch::allclose(averaged, expected, 1e-5, 1e-6));
}

TEST_CASE("an ensemble of one model hands on its rows as they are", "[infer]") {
  const torch::Tensor image = torch::randn({1, 60, 30});
  const auto a = convolution(1, 4);
  const TileOptions o = tiles(16, 1, 0.5, 2);
  std::vector<EnsembleMember> members;
  members.push_back({"", TiledPrediction(a, image, o)});
  EnsembleRows rows(std::move(members));
  torch::Tensor assembled = torch::zeros({3, 60, 30});
  while (!rows.done()) {
    const auto band = rows.next();
    assembled.slice(1, band.row, band.row + band.probabilities.size(1)).copy_(band.probabilities);
  }
  CHECK(torch::equal(assembled, dpunet::infer::predict_probabilities(a, image, o)));
}

TEST_CASE("an ensemble member's failure names the model", "[infer]") {
  const torch::Tensor image = torch::randn({1, 50, 50});
  // b crops its output as if valid-padded, but its tiles say otherwise.
  const auto b = [](const torch::Tensor& x) { return torch::conv2d(x, torch::ones({2, 1, 5, 5})); };
  std::vector<EnsembleMember> members;
  members.push_back({"model a.pt", TiledPrediction(convolution(0, 1), image, tiles(16, 0, 0.5, 2))});
  members.push_back({"model b.pt", TiledPrediction(b, image, tiles(16, 0, 0.5, 2))});
  EnsembleRows rows(std::move(members));
  CHECK_THROWS_WITH(rows.next(),
                    Catch::Matchers::StartsWith("model b.pt: ") && HasSubstr("returned 12x12 for 16x16 tiles"));
}
