// Overlap-tile inference: tile placement, mirror padding, and blending that reproduces a
// whole-image prediction exactly for a pixel-wise model, with same and valid padding.
#include <torch/torch.h>
#include "support/catch.h"

#include "infer/sliding_window.h"

using dpunet::infer::TileOptions;

namespace {

// A pixel-wise "model": two classes whose logits are -x and x. With `margin` > 0 it
// also crops its output like a valid-padded U-Net.
dpunet::infer::Forward pixelwise(int64_t margin) {
  return [margin](const torch::Tensor& x) {
    torch::Tensor logits = torch::cat({-x, x}, 1) * 3.0;
    if (margin == 0) return logits;
    return logits.slice(2, margin, x.size(2) - margin).slice(3, margin, x.size(3) - margin);
  };
}

}  // namespace

TEST_CASE("tile origins cover the image with the asked overlap", "[infer]") {
  CHECK(dpunet::infer::tile_origins(100, 128, 0.5) == std::vector<int64_t>{0});
  const auto origins = dpunet::infer::tile_origins(1000, 256, 0.5);
  CHECK(origins.front() == 0);
  CHECK(origins.back() == 1000 - 256);
  for (size_t i = 1; i < origins.size(); ++i) CHECK(origins[i] - origins[i - 1] <= 128);
}

TEST_CASE("mirror padding reflects without repeating the edge, at any width", "[infer]") {
  const torch::Tensor x = torch::arange(4, torch::kFloat).view({1, 1, 4});
  const torch::Tensor padded = dpunet::infer::mirror_pad(x, 0, 0, 2, 3);
  CHECK(torch::equal(padded.flatten(), torch::tensor({2.f, 1.f, 0.f, 1.f, 2.f, 3.f, 2.f, 1.f, 0.f})));
  const torch::Tensor wide = dpunet::infer::mirror_pad(x, 0, 0, 7, 0);  // wider than the image
  CHECK(torch::equal(wide.flatten().slice(0, 0, 7), torch::tensor({1.f, 0.f, 1.f, 2.f, 3.f, 2.f, 1.f})));
}

TEST_CASE("tiled prediction equals whole-image prediction for a pixel-wise model", "[infer]") {
  torch::manual_seed(0);
  const torch::Tensor image = torch::randn({1, 70, 53});
  const torch::Tensor expected = torch::softmax(torch::cat({-image, image}, 0) * 3.0, 0);
  const int64_t margin = GENERATE(0, 6);
  const bool tta = GENERATE(false, true);
  TileOptions o;
  o.output_tile = 24;
  o.input_tile = 24 + 2 * margin;
  o.overlap = 0.5;
  o.batch = 3;
  o.flip_tta = tta;
  const torch::Tensor p = dpunet::infer::predict_probabilities(pixelwise(margin), image, o);
  REQUIRE(p.sizes() == expected.sizes());
  CHECK(torch::allclose(p, expected, 1e-5, 1e-6));
  // An image smaller than one tile works too.
  const torch::Tensor small = image.slice(1, 0, 10).slice(2, 0, 7);
  const torch::Tensor q = dpunet::infer::predict_probabilities(pixelwise(margin), small, o);
  CHECK(torch::allclose(q, expected.slice(1, 0, 10).slice(2, 0, 7), 1e-5, 1e-6));
}

TEST_CASE("a model whose output does not match the tile is reported", "[infer]") {
  TileOptions o;
  o.input_tile = o.output_tile = 16;
  CHECK_THROWS_WITH(dpunet::infer::predict_probabilities(pixelwise(2), torch::zeros({1, 20, 20}), o),
                    HasSubstr("returned 12x12 for 16x16 tiles"));
}
