// Sliding-window prediction with Gaussian blending.
#include "infer/sliding_window.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "data/reflect.h"

namespace dpunet::infer {
namespace {

torch::Tensor reflect_indices(int64_t before, int64_t size, int64_t after, const torch::Device& device) {
  std::vector<int64_t> index;
  index.reserve(static_cast<size_t>(before + size + after));
  for (int64_t i = -before; i < size + after; ++i) index.push_back(data::reflect_index(i, size));
  return torch::tensor(index, torch::TensorOptions().dtype(torch::kLong).device(device));
}

// Gaussian importance map [tile, tile], sigma = tile / 8, normalised to a maximum of 1
// and floored so that tile corners still count a little.
torch::Tensor gaussian_weights(int64_t tile, const torch::Device& device) {
  const torch::Tensor coords = torch::arange(tile, torch::kFloat) - (tile - 1) / 2.0;
  const double sigma = tile / 8.0;
  const torch::Tensor g = torch::exp(-(coords * coords) / (2 * sigma * sigma));
  torch::Tensor map = torch::outer(g, g);
  map = map / map.max();
  return map.clamp_min(1e-3).to(device);
}

}  // namespace

std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap) {
  if (size <= tile) return {0};
  const double step = std::max(1.0, static_cast<double>(tile) * (1.0 - overlap));
  const auto count = static_cast<int64_t>(std::ceil(static_cast<double>(size - tile) / step)) + 1;
  std::vector<int64_t> origins;
  for (int64_t i = 0; i < count; ++i) {
    origins.push_back(static_cast<int64_t>(std::llround(static_cast<double>(i) * (size - tile) / (count - 1))));
  }
  return origins;
}

torch::Tensor mirror_pad(const torch::Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  const int64_t h = x.size(-2), w = x.size(-1);
  return x.index_select(-2, reflect_indices(top, h, bottom, x.device()))
      .index_select(-1, reflect_indices(left, w, right, x.device()));
}

torch::Tensor predict_probabilities(const Forward& forward, const torch::Tensor& image, const TileOptions& o) {
  DPUNET_CHECK(image.dim() == 3, "predict: image must be [C, H, W], got ", image.sizes());
  DPUNET_CHECK(o.output_tile > 0 && o.input_tile >= o.output_tile && (o.input_tile - o.output_tile) % 2 == 0,
               "predict: input tile ", o.input_tile, " and output tile ", o.output_tile, " do not fit together");
  DPUNET_CHECK(o.overlap >= 0 && o.overlap < 1, "predict: overlap must be in [0, 1), got ", o.overlap);
  torch::NoGradGuard no_grad;
  const int64_t h = image.size(1), w = image.size(2);
  const int64_t margin = (o.input_tile - o.output_tile) / 2;
  // The output area covers the image, at least one tile in each direction; an image
  // smaller than a tile sits in its centre, so every edge sees mirrored context alike.
  const int64_t out_h = std::max(h, o.output_tile), out_w = std::max(w, o.output_tile);
  const int64_t top = (out_h - h) / 2, left = (out_w - w) / 2;
  const torch::Tensor padded =
      mirror_pad(image, margin + top, margin + out_h - h - top, margin + left, margin + out_w - w - left);
  const auto ys = tile_origins(out_h, o.output_tile, o.overlap);
  const auto xs = tile_origins(out_w, o.output_tile, o.overlap);
  std::vector<std::pair<int64_t, int64_t>> origins;
  for (int64_t y : ys) {
    for (int64_t x : xs) origins.emplace_back(y, x);
  }
  const torch::Tensor weight = gaussian_weights(o.output_tile, image.device());
  torch::Tensor sum, weight_sum = torch::zeros({out_h, out_w}, weight.options());
  for (size_t start = 0; start < origins.size(); start += static_cast<size_t>(o.batch)) {
    const size_t end = std::min(origins.size(), start + static_cast<size_t>(o.batch));
    std::vector<torch::Tensor> tiles;
    for (size_t i = start; i < end; ++i) {
      tiles.push_back(padded.slice(1, origins[i].first, origins[i].first + o.input_tile)
                          .slice(2, origins[i].second, origins[i].second + o.input_tile));
    }
    const torch::Tensor batch = torch::stack(tiles);
    torch::Tensor probabilities = torch::softmax(forward(batch).to(torch::kFloat), 1);
    if (o.flip_tta) {
      for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2}, {3}, {2, 3}}) {
        probabilities += torch::softmax(forward(batch.flip(dims)).to(torch::kFloat), 1).flip(dims);
      }
      probabilities /= 4.0;
    }
    DPUNET_CHECK(probabilities.size(2) == o.output_tile && probabilities.size(3) == o.output_tile,
                 "predict: the model returned ", probabilities.size(2), "x", probabilities.size(3), " for ",
                 o.input_tile, "x", o.input_tile, " tiles; expected ", o.output_tile);
    if (!sum.defined()) sum = torch::zeros({probabilities.size(1), out_h, out_w}, weight.options());
    for (size_t i = start; i < end; ++i) {
      const auto [y, x] = origins[i];
      sum.slice(1, y, y + o.output_tile).slice(2, x, x + o.output_tile) += probabilities[i - start] * weight;
      weight_sum.slice(0, y, y + o.output_tile).slice(1, x, x + o.output_tile) += weight;
    }
  }
  return sum.div_(weight_sum).slice(1, top, top + h).slice(2, left, left + w);  // in place: one [K, H, W] map
}

}  // namespace dpunet::infer
