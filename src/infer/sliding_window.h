// Overlap-tile inference for images of any size, as in the U-Net paper and nnU-Net: the
// image is mirror-padded, cut into tiles that overlap, each tile is predicted (in
// batches, optionally also flipped), and overlapping predictions are blended with a
// Gaussian weight that trusts tile centres more than borders. Works for models whose
// output is smaller than their input (valid padding): the input tiles then carry the
// context margin around each output tile.
#pragma once

#include <torch/types.h>

#include <functional>

namespace dpunet::infer {

struct TileOptions {
  int64_t input_tile = 256;   // side of the tiles fed to the model
  int64_t output_tile = 256;  // side of what the model returns for such a tile
  double overlap = 0.5;       // share of an output tile that the next one overlaps
  int64_t batch = 4;          // tiles per forward call
  bool flip_tta = false;      // also predict the flipped tiles and average
};

// `forward`: tiles [B, C, input_tile, input_tile] -> logits [B, K, output_tile, output_tile].
using Forward = std::function<torch::Tensor(const torch::Tensor&)>;

// image [C, H, W] (float, on the model's device) -> class probabilities [K, H, W] (float).
torch::Tensor predict_probabilities(const Forward& forward, const torch::Tensor& image, const TileOptions& options);

// The tile origins along one axis: `count` positions from 0 to size - tile, evenly
// spread so that neighbours overlap by at least `overlap` of a tile. Exposed for tests.
std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap);

// Mirror-pads x [..., H, W] by (top, bottom, left, right) without repeating the edge,
// for any pad width (repeated reflection when the pad exceeds the image).
torch::Tensor mirror_pad(const torch::Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right);

}  // namespace dpunet::infer
