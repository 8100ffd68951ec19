// Overlap-tile inference for images of any size, as in the U-Net paper and nnU-Net: the
// image is mirror-padded, cut into tiles that overlap, each tile is predicted (in
// batches, optionally also flipped), and overlapping predictions are blended with a
// Gaussian weight that trusts tile centres more than borders. Works for models whose
// output is smaller than their input (valid padding): the input tiles then carry the
// context margin around each output tile.
//
// Tiles are taken in row order and the class sums are kept only for the rows that later
// tiles still reach, so a whole slide's prediction holds a band of rows, not the image's
// K class sums; finished rows are handed on as they are done.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "infer/input_rows.h"

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

// Image rows [begin, end) to predict; end -1: to the last row. Ranks that share a slide
// each predict a band of it.
struct RowBand {
  int64_t begin = 0, end = -1;
};

// Consecutive finished rows of an image's class probabilities.
struct ProbabilityRows {
  int64_t row = 0;              // the image row of the first
  torch::Tensor probabilities;  // [K, rows, W] float, on the image's device
};

// The overlap-tile prediction of one image, a few rows at a time. Holds one batch of
// tiles and the class sums of the rows its tiles still reach, about K x (output tile +
// the rows a batch spans) x W floats, and asks its input for the rows its next tiles read
// (an input tile's worth and a batch's span), saying which it is done with.
class TiledPrediction {
 public:
  // The input's rows are read on its device, the model's; several predictions (an
  // ensemble's models) may read one input. With a band, only its rows are returned: the
  // tiles that reach them are predicted in the batches the whole image's prediction
  // forms, so each row gets the whole image's values, bit for bit, and the rows above the
  // band are read past, not held.
  TiledPrediction(Forward forward, std::shared_ptr<SharedRows> input, const TileOptions& options, RowBand band = {});
  // image [C, H, W] (float, on the model's device), kept until the prediction is destroyed.
  TiledPrediction(Forward forward, torch::Tensor image, const TileOptions& options);

  // Every row of the band was returned.
  bool done() const { return rows_done_ == band_end_; }
  // Predicts tiles until some rows are final and returns them: the rows after the last
  // call's, in order, until done().
  ProbabilityRows next();
  // The image row after the last one returned (the band's first before any).
  int64_t rows_done() const { return rows_done_; }
  int64_t band_begin() const { return band_begin_; }
  int64_t band_end() const { return band_end_; }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  // The most rows of class sums allocated at once so far (for tests of the bound; while
  // the sums grow, the rows they grow from are held a moment too).
  int64_t most_rows_held() const { return most_rows_held_; }

 private:
  // Predicts the next batch of tiles and adds it to the sums.
  void predict_batch();
  // Tile `origin`'s input [C, input_tile, input_tile], mirrored where it reaches past the image.
  torch::Tensor input_tile(std::pair<int64_t, int64_t> origin) const;

  Forward forward_;
  std::shared_ptr<SharedRows> input_;
  int reader_ = 0;  // this prediction's id among the input's readers
  TileOptions options_;
  int64_t height_ = 0, width_ = 0;
  int64_t margin_ = 0;                                // context around an output tile: (input_tile - output_tile) / 2
  int64_t out_h_ = 0, out_w_ = 0;                     // the area tiled: the image, or a tile where the image is smaller
  int64_t top_ = 0, left_ = 0;                        // where the image sits in that area
  std::vector<std::pair<int64_t, int64_t>> origins_;  // output tiles' top-left corners, row by row
  // Per tile: the first image row that it or any later tile reads (one more entry, the
  // image's height, for after the last).
  std::vector<int64_t> rows_needed_from_;
  size_t next_tile_ = 0;
  size_t tiles_end_ = 0;  // after the band's last tile (its batch's last)
  int64_t band_begin_ = 0, band_end_ = 0;
  torch::Tensor weight_;            // [output_tile, output_tile] blending weight
  torch::Tensor sum_, weight_sum_;  // [K, rows, out_w] and [rows, out_w], from area row first_row_
  int64_t first_row_ = 0;           // area row of sum_'s first row: every row above it was returned
  int64_t rows_done_ = 0;
  int64_t most_rows_held_ = 0;
};

// image [C, H, W] (float, on the model's device) -> class probabilities [K, H, W] (float).
torch::Tensor predict_probabilities(const Forward& forward, const torch::Tensor& image, const TileOptions& options);

}  // namespace dpunet::infer
