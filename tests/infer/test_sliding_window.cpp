// Overlap-tile inference: tile placement, mirror padding, blending that reproduces a
// whole-image prediction exactly for a pixel-wise model, with same and valid padding,
// and the band-by-band prediction that gives the whole-image blend's values.
#include <torch/torch.h>
#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/tile_grid.h"
#include "data/reflect.h"
#include "infer/ensemble_rows.h"
#include "infer/input_rows.h"
#include "infer/sliding_window.h"
#include "support/top_down_rows.h"

using dpunet::infer::TileOptions;

namespace {

// x [..., H, W] mirror-padded by (top, bottom, left, right) without repeating the edge,
// for any pad width (repeated reflection past the image): the reference blend's padding,
// made the plain way, whole, from the shared reflection rule.
torch::Tensor mirror_pad(const torch::Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  const auto indices = [](int64_t before, int64_t size, int64_t after) {
    std::vector<int64_t> index;
    for (int64_t i = -before; i < size + after; ++i) index.push_back(dpunet::data::reflect_index(i, size));
    return torch::tensor(index);
  };
  return x.index_select(-2, indices(top, x.size(-2), bottom)).index_select(-1, indices(left, x.size(-1), right));
}

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
  CHECK(dpunet::tile_origins(100, 128, 0.5) == std::vector<int64_t>{0});
  const auto origins = dpunet::tile_origins(1000, 256, 0.5);
  CHECK(origins.front() == 0);
  CHECK(origins.back() == 1000 - 256);
  for (size_t i = 1; i < origins.size(); ++i) CHECK(origins[i] - origins[i - 1] <= 128);
  // No overlap: tiles side by side when they divide the image, else spread evenly from
  // the first edge to the other (overlapping a little, never past the edge).
  CHECK(dpunet::tile_origins(512, 128, 0.0) == std::vector<int64_t>{0, 128, 256, 384});
  CHECK(dpunet::tile_origins(500, 128, 0.0) == std::vector<int64_t>{0, 124, 248, 372});
  CHECK(dpunet::tile_origins(128, 128, 0.0) == std::vector<int64_t>{0});
  CHECK(dpunet::tile_origins(384, 256, 0.5) == std::vector<int64_t>{0, 128});
  // Overlaps whose step is not exact in binary: a span of whole steps takes no tile more.
  CHECK(dpunet::tile_origins(512, 256, 0.9).size() == 11);  // 256 / 25.6 = 10 steps
  CHECK(dpunet::tile_origins(512, 128, 0.8).size() == 16);  // 384 / 25.6 = 15 steps
  CHECK(dpunet::tile_origins(513, 256, 0.9).size() == 12);  // a pixel more: a step more
}

TEST_CASE("the reference's mirror padding reflects without repeating the edge, at any width", "[infer]") {
  const torch::Tensor x = torch::arange(4, torch::kFloat).view({1, 1, 4});
  const torch::Tensor padded = mirror_pad(x, 0, 0, 2, 3);
  CHECK(torch::equal(padded.flatten(), torch::tensor({2.f, 1.f, 0.f, 1.f, 2.f, 3.f, 2.f, 1.f, 0.f})));
  const torch::Tensor wide = mirror_pad(x, 0, 0, 7, 0);  // wider than the image
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

namespace {

// A "model" that ignores the image: class 1's logit is 0.2 x the row inside the tile,
// so each tile's prediction varies with position and blending weights show in the result.
torch::Tensor row_logits(const torch::Tensor& x) {
  const torch::Tensor rows = torch::arange(x.size(2), torch::kFloat).view({1, 1, -1, 1}) * 0.2;
  const torch::Tensor one = rows.expand({x.size(0), 1, x.size(2), x.size(3)});
  return torch::cat({torch::zeros_like(one), one}, 1);
}

// The importance of pixel (i, j) of a tile: a 2-D Gaussian with sigma tile / 8 around
// the centre, scaled to a peak of 1 over the tile's pixels, floored at 1e-3.
double tile_weight(int64_t i, int64_t j, int64_t tile) {
  const double sigma = tile / 8.0;
  const auto g = [&](double x) {
    const double d = x - (tile - 1) / 2.0;
    return std::exp(-d * d / (2 * sigma * sigma));
  };
  const double peak = g(tile / 2);  // the pixel nearest the centre
  return std::max(g(static_cast<double>(i)) * g(static_cast<double>(j)) / (peak * peak), 1e-3);
}

double row_probability(int64_t i) {
  return 1.0 / (1.0 + std::exp(-0.2 * static_cast<double>(i)));
}

}  // namespace

TEST_CASE("overlapping tiles are blended with Gaussian weights, and a small image sits in the tile's centre",
          "[infer]") {
  TileOptions o;
  o.input_tile = o.output_tile = 24;
  o.overlap = 0.5;
  o.batch = 2;
  // 40 rows: tiles at rows 0, 8 and 16, one column of tiles.
  const torch::Tensor p = dpunet::infer::predict_probabilities(row_logits, torch::zeros({1, 40, 24}), o);
  REQUIRE(dpunet::tile_origins(40, 24, 0.5) == std::vector<int64_t>{0, 8, 16});
  for (int64_t r = 0; r < 40; ++r) {
    double weighted = 0, weights = 0;
    for (int64_t y : {0, 8, 16}) {
      if (r < y || r >= y + 24) continue;
      weighted += tile_weight(r - y, 5, 24) * row_probability(r - y);
      weights += tile_weight(r - y, 5, 24);
    }
    INFO("row " << r);
    CHECK(p[1][r][5].item<double>() == Approx(weighted / weights).epsilon(1e-5));
  }
  // 10 rows in a 24-row tile: rows 7..16 of the tile, centred ((24 - 10) / 2 = 7).
  const torch::Tensor small = dpunet::infer::predict_probabilities(row_logits, torch::zeros({1, 10, 24}), o);
  for (int64_t r = 0; r < 10; ++r) CHECK(small[1][r][3].item<double>() == Approx(row_probability(7 + r)));
}

TEST_CASE("a model whose output does not match the tile is reported", "[infer]") {
  TileOptions o;
  o.input_tile = o.output_tile = 16;
  CHECK_THROWS_WITH(dpunet::infer::predict_probabilities(pixelwise(2), torch::zeros({1, 20, 20}), o),
                    HasSubstr("returned 12x12 for 16x16 tiles"));
}

namespace {

// The whole-image blend, written out the plain way (the whole image padded, one sum map
// of the image's size): what the band-by-band prediction must reproduce.
torch::Tensor whole_image_blend(const dpunet::infer::Forward& forward, const torch::Tensor& image,
                                const TileOptions& o) {
  torch::NoGradGuard no_grad;
  const int64_t h = image.size(1), w = image.size(2), margin = (o.input_tile - o.output_tile) / 2;
  const int64_t out_h = std::max(h, o.output_tile), out_w = std::max(w, o.output_tile);
  const int64_t top = (out_h - h) / 2, left = (out_w - w) / 2, t = o.output_tile;
  const torch::Tensor padded =
      mirror_pad(image, margin + top, margin + out_h - h - top, margin + left, margin + out_w - w - left);
  const torch::Tensor g =
      torch::exp(-torch::pow(torch::arange(t, torch::kDouble) - (t - 1) / 2.0, 2) / (2 * (t / 8.0) * (t / 8.0)));
  const torch::Tensor weight = (torch::outer(g, g) / torch::outer(g, g).max()).clamp_min(1e-3).to(torch::kFloat);
  torch::Tensor sum, weights = torch::zeros({out_h, out_w});
  for (int64_t y : dpunet::tile_origins(out_h, t, o.overlap)) {
    for (int64_t x : dpunet::tile_origins(out_w, t, o.overlap)) {
      const torch::Tensor tile = padded.slice(1, y, y + o.input_tile).slice(2, x, x + o.input_tile).unsqueeze(0);
      torch::Tensor p = torch::softmax(forward(tile), 1);
      if (o.flip_tta) {
        for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2}, {3}, {2, 3}}) {
          p = p + torch::softmax(forward(tile.flip(dims)), 1).flip(dims);
        }
        p = p / 4.0;
      }
      p = p[0];
      if (!sum.defined()) sum = torch::zeros({p.size(0), out_h, out_w});
      sum.slice(1, y, y + t).slice(2, x, x + t) += p * weight;
      weights.slice(0, y, y + t).slice(1, x, x + t) += weight;
    }
  }
  return (sum / weights).slice(1, top, top + h).slice(2, left, left + w);
}

// A small convolutional "model" with random weights, valid-padded by `margin` on each side.
dpunet::infer::Forward convolution(int64_t channels, int64_t margin) {
  torch::manual_seed(3);
  const torch::Tensor kernel = torch::randn({3, channels, 2 * margin + 1, 2 * margin + 1}) * 0.3;
  return [kernel](const torch::Tensor& x) { return torch::conv2d(x, kernel); };
}

}  // namespace

TEST_CASE("band-by-band prediction gives the whole-image blend, row by row in order, holding a band", "[infer]") {
  torch::manual_seed(1);
  const int64_t margin = GENERATE(0, 4);
  const auto [height, width] = GENERATE(table<int64_t, int64_t>({{70, 53}, {10, 7}, {200, 30}, {17, 300}}));
  const double overlap = GENERATE(0.0, 0.5, 0.75);
  const bool tta = GENERATE(false, true);
  TileOptions o;
  o.output_tile = 24;
  o.input_tile = 24 + 2 * margin;
  o.overlap = overlap;
  o.batch = 3;
  o.flip_tta = tta;
  const torch::Tensor image = torch::randn({2, height, width});
  const dpunet::infer::Forward forward = convolution(2, margin);
  INFO(height << "x" << width << ", margin " << margin << ", overlap " << overlap << ", tta " << tta);
  const torch::Tensor expected = whole_image_blend(forward, image, o);

  dpunet::infer::TiledPrediction prediction(forward, image, o);
  REQUIRE(prediction.height() == height);
  REQUIRE(prediction.width() == width);
  torch::Tensor assembled = torch::full_like(expected, -1);
  int64_t next_row = 0, bands = 0, most_held = 0;
  while (!prediction.done()) {
    const dpunet::infer::ProbabilityRows rows = prediction.next();
    REQUIRE(rows.row == next_row);  // in order, none twice, none left out
    REQUIRE(rows.probabilities.size(1) > 0);
    REQUIRE(rows.probabilities.size(2) == width);
    next_row += rows.probabilities.size(1);
    CHECK(prediction.rows_done() == next_row);
    assembled.slice(1, rows.row, next_row).copy_(rows.probabilities);
    ++bands;
  }
  CHECK(next_row == height);
  most_held = prediction.most_rows_held();
  CHECK(torch::allclose(assembled, expected, 1e-5, 1e-6));
  CHECK(torch::allclose(dpunet::infer::predict_probabilities(forward, image, o), expected, 1e-5, 1e-6));
  CHECK_THROWS_WITH(prediction.next(), HasSubstr("already returned"));
  // Sums are held for a tile's rows and those between a batch's tile rows, not the image's.
  const auto origins = dpunet::tile_origins(std::max<int64_t>(height, 24), 24, overlap);
  const auto columns = dpunet::tile_origins(std::max<int64_t>(width, 24), 24, overlap).size();
  int64_t widest_step = 0;
  for (size_t i = 1; i < origins.size(); ++i) widest_step = std::max(widest_step, origins[i] - origins[i - 1]);
  const auto rows_per_batch = static_cast<int64_t>((o.batch + columns - 1) / columns) + 1;
  CHECK(most_held <= 24 + rows_per_batch * widest_step);
  if (height == 200) CHECK(bands >= 5);  // handed on as finished, not at the end

  // Read from the top down (as an image file is), by two predictions sharing the rows:
  // the same values, with the rows the next tiles read held, not the image.
  const auto input =
      std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
  dpunet::infer::TiledPrediction first(forward, input, o), second(forward, input, o);
  torch::Tensor streamed = torch::full_like(expected, -1);
  while (!first.done() || !second.done()) {
    for (dpunet::infer::TiledPrediction* p : {&first, &second}) {
      if (p->done()) continue;
      const dpunet::infer::ProbabilityRows rows = p->next();
      const torch::Tensor band = streamed.slice(1, rows.row, rows.row + rows.probabilities.size(1));
      if (p == &first) band.copy_(rows.probabilities);
      if (p == &second) CHECK(torch::equal(band, rows.probabilities));
    }
  }
  CHECK(torch::equal(streamed, assembled));
  // Rows are read 64 at least at a time; an input tile's and a batch's rows are needed.
  CHECK(input->most_rows_held() <= std::max<int64_t>(64, o.input_tile + rows_per_batch * widest_step) + 64);
  if (height == 200 && overlap > 0) CHECK(input->most_rows_held() < height);
}

TEST_CASE("a band of rows gets the whole image's values bit for bit, without holding the rows above it", "[infer]") {
  torch::manual_seed(2);
  const int64_t margin = GENERATE(0, 4);
  const double overlap = GENERATE(0.0, 0.5);
  const int64_t batch = GENERATE(1, 3);
  const bool tta = GENERATE(false, true);
  TileOptions o;
  o.output_tile = 24;
  o.input_tile = 24 + 2 * margin;
  o.overlap = overlap;
  o.batch = batch;
  o.flip_tta = tta;
  const torch::Tensor image = torch::randn({2, 300, 41});
  const dpunet::infer::Forward forward = convolution(2, margin);
  INFO("margin " << margin << ", overlap " << overlap << ", batch " << batch << ", tta " << tta);
  const torch::Tensor whole = dpunet::infer::predict_probabilities(forward, image, o);
  for (const auto& [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 300}, {0, 1}, {0, 100}, {100, 200}, {200, 300}, {299, 300}, {37, 38}, {150, 151}, {13, 287}}) {
    INFO("rows " << begin << " to " << end);
    const auto input =
        std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
    dpunet::infer::TiledPrediction band(forward, input, o, dpunet::infer::RowBand{begin, end});
    CHECK(band.rows_done() == begin);
    int64_t next_row = begin;
    while (!band.done()) {
      const dpunet::infer::ProbabilityRows rows = band.next();
      REQUIRE(rows.row == next_row);
      REQUIRE(rows.probabilities.size(1) > 0);
      next_row += rows.probabilities.size(1);
      CHECK(torch::equal(rows.probabilities, whole.slice(1, rows.row, next_row)));
    }
    CHECK(next_row == end);
    // The rows above the band were read past: a band's tiles' rows are held, not those.
    CHECK(input->most_rows_held() <= std::min<int64_t>(300, end - begin + 2 * (o.input_tile + batch * 24) + 64));
  }
  const auto input =
      std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
  CHECK_THROWS_WITH(dpunet::infer::TiledPrediction(forward, input, o, dpunet::infer::RowBand{10, 10}),
                    HasSubstr("rows 10 to 10 of a 300-row image"));
  CHECK_THROWS_WITH(dpunet::infer::TiledPrediction(forward, input, o, dpunet::infer::RowBand{0, 301}),
                    HasSubstr("rows 0 to 301"));
}

TEST_CASE("an ensemble of band predictions averages the band's rows alone", "[infer]") {
  const torch::Tensor image = torch::randn({2, 90, 30});
  TileOptions o;
  o.output_tile = o.input_tile = 16;
  const auto members = [&](dpunet::infer::RowBand band) {
    std::vector<dpunet::infer::EnsembleMember> m;
    const auto input =
        std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
    m.push_back({"a", dpunet::infer::TiledPrediction(convolution(2, 0), input, o, band)});
    // A second "model": the first's logits in another order, halved.
    const dpunet::infer::Forward other = [first = convolution(2, 0)](const torch::Tensor& x) {
      return first(x).flip(1) * 0.5;
    };
    m.push_back({"b", dpunet::infer::TiledPrediction(other, input, o, band)});
    return m;
  };
  dpunet::infer::EnsembleRows whole(members({}));
  const torch::Tensor all = dpunet::infer::class_map(whole);
  REQUIRE(all.size(0) == 90);
  dpunet::infer::EnsembleRows band(members({30, 61}));
  CHECK(band.rows_done() == 30);
  const torch::Tensor part = dpunet::infer::class_map(band);
  REQUIRE(part.size(0) == 31);
  CHECK(torch::equal(part, all.slice(0, 30, 61)));
  // Models whose tiles differ read the shared rows from different first rows: the one
  // that starts lower, constructed first, must not let go of the rows the other needs.
  for (const bool larger_first : {true, false}) {
    INFO("the larger tiles first: " << larger_first);
    TileOptions large = o;
    large.output_tile = large.input_tile = 40;
    large.batch = 1;
    const auto input =
        std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
    const auto whole_rows = [&](const TileOptions& options) {
      return dpunet::infer::predict_probabilities(convolution(2, 0), image, options);
    };
    const torch::Tensor expected = ((whole_rows(o) + whole_rows(large)) / 2.0).argmax(0).to(torch::kByte);
    std::vector<dpunet::infer::EnsembleMember> mixed_tiles;
    for (const TileOptions& options :
         larger_first ? std::vector<TileOptions>{large, o} : std::vector<TileOptions>{o, large}) {
      mixed_tiles.push_back({"", dpunet::infer::TiledPrediction(convolution(2, 0), input, options, {50, 80})});
    }
    dpunet::infer::EnsembleRows rows(std::move(mixed_tiles));
    CHECK(torch::equal(dpunet::infer::class_map(rows), expected.slice(0, 50, 80)));
  }
  // Three models of three tilings: each row's probabilities are added in the models'
  // order, so a band's are the whole image's bit for bit, however the rows came.
  const auto three = [&](dpunet::infer::RowBand band) {
    const auto input =
        std::make_shared<dpunet::infer::SharedRows>(std::make_unique<dpunet::test::TopDownRows>(image), image.device());
    std::vector<dpunet::infer::EnsembleMember> m;
    for (const int64_t tile : {16, 40, 24}) {
      TileOptions options = o;
      options.output_tile = options.input_tile = tile;
      options.batch = 2;
      m.push_back({"", dpunet::infer::TiledPrediction(convolution(2, 0), input, options, band)});
    }
    dpunet::infer::EnsembleRows rows(std::move(m));
    torch::Tensor probabilities = torch::full({3, image.size(1), image.size(2)}, -1.0);
    dpunet::infer::class_map(rows, [&](const dpunet::infer::ProbabilityRows& p) {
      probabilities.slice(1, p.row, p.row + p.probabilities.size(1)).copy_(p.probabilities);
    });
    return probabilities;
  };
  const torch::Tensor all_three = three({});
  for (const auto& [begin, end] : std::vector<std::pair<int64_t, int64_t>>{{0, 30}, {30, 61}, {61, 90}, {7, 8}}) {
    INFO("rows " << begin << " to " << end);
    CHECK(torch::equal(three({begin, end}).slice(1, begin, end), all_three.slice(1, begin, end)));
  }
  // Members that predict other bands are refused.
  std::vector<dpunet::infer::EnsembleMember> mixed = members({30, 61});
  mixed.push_back({"c", dpunet::infer::TiledPrediction(convolution(2, 0), image, o)});
  CHECK_THROWS_WITH(dpunet::infer::EnsembleRows(std::move(mixed)), HasSubstr("c predicts rows 0 to 90"));
}
