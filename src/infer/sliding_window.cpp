// Sliding-window prediction with Gaussian blending, row band by row band.
#include "infer/sliding_window.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/tile_grid.h"
#include "data/reflect.h"

namespace dpunet::infer {
namespace {

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

// The span [lo, hi) of indices first .. first + count - 1 once mirrored into [0, size).
std::pair<int64_t, int64_t> mirrored_span(int64_t first, int64_t count, int64_t size) {
  if (first >= 0 && first + count <= size) return {first, first + count};
  int64_t lo = size, hi = 0;
  for (int64_t i = first; i < first + count; ++i) {
    const int64_t j = data::reflect_index(i, size);
    lo = std::min(lo, j);
    hi = std::max(hi, j + 1);
  }
  return {lo, hi};
}

// x, narrowed along `dim` to the span [lo, ...) of the indices first .. first + count - 1
// mirrored into [0, size) -> those `count` entries. The indices are computed on x's
// device: a host-made index would cost a GPU tile a synchronising copy.
torch::Tensor gather_mirrored(const torch::Tensor& x, int64_t dim, int64_t first, int64_t count, int64_t size,
                              int64_t lo) {
  if (first >= 0 && first + count <= size) return x;  // inside: the narrowing was all
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  if (size == 1) return x.index_select(dim, torch::zeros({count}, options));
  const int64_t period = 2 * (size - 1);
  torch::Tensor index = torch::remainder(torch::arange(first, first + count, options), period);
  index = torch::where(index < size, index, period - index);
  return x.index_select(dim, index - lo);
}

}  // namespace

TiledPrediction::TiledPrediction(Forward forward, torch::Tensor image, const TileOptions& options)
    : TiledPrediction(std::move(forward),
                      std::make_shared<SharedRows>(std::make_unique<TensorRows>(image), image.device()), options) {}

TiledPrediction::TiledPrediction(Forward forward, std::shared_ptr<SharedRows> input, const TileOptions& o, RowBand band)
    : forward_(std::move(forward)), input_(std::move(input)), options_(o) {
  DPUNET_CHECK(o.output_tile > 0 && o.input_tile >= o.output_tile && (o.input_tile - o.output_tile) % 2 == 0,
               "predict: input tile ", o.input_tile, " and output tile ", o.output_tile, " do not fit together");
  DPUNET_CHECK(o.overlap >= 0 && o.overlap < 1, "predict: overlap must be in [0, 1), got ", o.overlap);
  DPUNET_CHECK(o.batch >= 1, "predict: batch must be at least 1, got ", o.batch);
  height_ = input_->height();
  width_ = input_->width();
  reader_ = input_->add_reader();
  margin_ = (o.input_tile - o.output_tile) / 2;
  // The area tiled covers the image, at least one tile in each direction; an image
  // smaller than a tile sits in its centre, so every edge sees mirrored context alike.
  out_h_ = std::max(height_, o.output_tile);
  out_w_ = std::max(width_, o.output_tile);
  top_ = (out_h_ - height_) / 2;
  left_ = (out_w_ - width_) / 2;
  for (int64_t y : tile_origins(out_h_, o.output_tile, o.overlap)) {
    for (int64_t x : tile_origins(out_w_, o.output_tile, o.overlap)) origins_.emplace_back(y, x);
  }
  rows_needed_from_.assign(origins_.size() + 1, height_);
  for (size_t i = origins_.size(); i-- > 0;) {
    const int64_t y = origins_[i].first - margin_ - top_;
    rows_needed_from_[i] = std::min(rows_needed_from_[i + 1], mirrored_span(y, o.input_tile, height_).first);
  }
  weight_ = gaussian_weights(o.output_tile, input_->device());

  band_begin_ = band.begin;
  band_end_ = band.end < 0 ? height_ : band.end;
  DPUNET_CHECK(0 <= band_begin_ && band_begin_ < band_end_ && band_end_ <= height_, "predict: rows ", band_begin_,
               " to ", band_end_, " of a ", height_, "-row image");
  // The tiles whose output reaches the band (in the area's rows), widened to whole batches
  // of the whole image's: a tile's values may depend on the batch it is predicted in.
  const int64_t lo = band_begin_ + top_, hi = band_end_ + top_;
  size_t first = 0, end = 0;
  while (first < origins_.size() && origins_[first].first + o.output_tile <= lo) ++first;
  for (end = first; end < origins_.size() && origins_[end].first < hi;) ++end;
  const auto batch = static_cast<size_t>(o.batch);
  next_tile_ = first / batch * batch;
  tiles_end_ = std::min(origins_.size(), (end + batch - 1) / batch * batch);
  first_row_ = origins_[next_tile_].first;
  rows_done_ = band_begin_;
  input_->release(reader_, rows_needed_from_[next_tile_]);
}

torch::Tensor TiledPrediction::input_tile(std::pair<int64_t, int64_t> origin) const {
  // In image coordinates, the input tile starts a margin before its output tile.
  const int64_t n = options_.input_tile;
  const int64_t y = origin.first - margin_ - top_, x = origin.second - margin_ - left_;
  // Narrowed to what the tile reads first: an edge tile of a wide image gathers a tile's
  // worth of pixels, not a band of the image.
  const auto [y0, y1] = mirrored_span(y, n, height_);
  const auto [x0, x1] = mirrored_span(x, n, width_);
  const torch::Tensor span = input_->rows(y0, y1).slice(2, x0, x1);
  return gather_mirrored(gather_mirrored(span, 1, y, n, height_, y0), 2, x, n, width_, x0);
}

void TiledPrediction::predict_batch() {
  const TileOptions& o = options_;
  const size_t start = next_tile_;
  const size_t end = std::min(tiles_end_, start + static_cast<size_t>(o.batch));
  DPUNET_CHECK(start < end, "predict: no tile left to predict");
  std::vector<torch::Tensor> tiles;
  for (size_t i = start; i < end; ++i) tiles.push_back(input_tile(origins_[i]));
  const torch::Tensor batch = torch::stack(tiles);
  input_->release(reader_, rows_needed_from_[end]);
  torch::Tensor probabilities = torch::softmax(forward_(batch).to(torch::kFloat), 1);
  if (o.flip_tta) {
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2}, {3}, {2, 3}}) {
      probabilities += torch::softmax(forward_(batch.flip(dims)).to(torch::kFloat), 1).flip(dims);
    }
    probabilities /= 4.0;
  }
  DPUNET_CHECK(probabilities.size(2) == o.output_tile && probabilities.size(3) == o.output_tile,
               "predict: the model returned ", probabilities.size(2), "x", probabilities.size(3), " for ", o.input_tile,
               "x", o.input_tile, " tiles; expected ", o.output_tile);
  // The sums grow to the last row these tiles reach (tiles come row by row: the last one's).
  const int64_t needed = origins_[end - 1].first + o.output_tile - first_row_;
  if (!sum_.defined()) {
    sum_ = torch::zeros({probabilities.size(1), 0, out_w_}, weight_.options());
    weight_sum_ = torch::zeros({0, out_w_}, weight_.options());
  }
  if (needed > sum_.size(1)) {
    const int64_t more = needed - sum_.size(1);
    sum_ = torch::cat({sum_, torch::zeros({sum_.size(0), more, out_w_}, weight_.options())}, 1);
    weight_sum_ = torch::cat({weight_sum_, torch::zeros({more, out_w_}, weight_.options())}, 0);
    // New storage of exactly these rows; trimming later makes views of it, never more.
    most_rows_held_ = std::max(most_rows_held_, sum_.size(1));
  }
  for (size_t i = start; i < end; ++i) {
    const int64_t y = origins_[i].first - first_row_, x = origins_[i].second;
    sum_.slice(1, y, y + o.output_tile).slice(2, x, x + o.output_tile) += probabilities[i - start] * weight_;
    weight_sum_.slice(0, y, y + o.output_tile).slice(1, x, x + o.output_tile) += weight_;
  }
  next_tile_ = end;
}

ProbabilityRows TiledPrediction::next() {
  DPUNET_CHECK(!done(), "predict: every row of the image was already returned");
  torch::NoGradGuard no_grad;
  while (true) {
    predict_batch();
    // Later tiles start at the next one's row or below it: the rows above are final; after
    // the band's last tile, every row its sums hold.
    const int64_t final_row =
        next_tile_ < tiles_end_ ? origins_[next_tile_].first : std::min(out_h_, first_row_ + sum_.size(1));
    if (final_row <= first_row_) continue;
    const int64_t count = final_row - first_row_, first = first_row_;
    const torch::Tensor finished = sum_.slice(1, 0, count) / weight_sum_.slice(0, 0, count);
    // Views of the rows still open; the next growth copies them and frees the rest.
    sum_ = sum_.slice(1, count);
    weight_sum_ = weight_sum_.slice(0, count);
    first_row_ = final_row;
    // The band's rows among them: a small image's area has rows above and below it.
    const int64_t lo = std::max({first, top_, band_begin_ + top_});
    const int64_t hi = std::min({final_row, top_ + height_, band_end_ + top_});
    if (hi <= lo) continue;
    rows_done_ = hi - top_;
    return {lo - top_, finished.slice(1, lo - first, hi - first).slice(2, left_, left_ + width_)};
  }
}

torch::Tensor predict_probabilities(const Forward& forward, const torch::Tensor& image, const TileOptions& options) {
  TiledPrediction prediction(forward, image, options);
  torch::Tensor probabilities;
  while (!prediction.done()) {
    const ProbabilityRows rows = prediction.next();
    if (!probabilities.defined()) {
      probabilities = torch::empty({rows.probabilities.size(0), prediction.height(), prediction.width()},
                                   rows.probabilities.options());
    }
    probabilities.slice(1, rows.row, rows.row + rows.probabilities.size(1)).copy_(rows.probabilities);
  }
  return probabilities;
}

}  // namespace dpunet::infer
