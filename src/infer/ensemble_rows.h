// An ensemble's class probabilities averaged row band by row band, as nnU-Net averages
// its folds: each model tiles the image its own way (their tiles may differ), so the
// rows that every model has finished are averaged (added in the models' order, however
// their rows came: a band of an image gets the whole image's values) and handed on, and
// the others wait. Holds each model's rows not yet averaged, not the image's.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "infer/sliding_window.h"

namespace dpunet::infer {

struct EnsembleMember {
  std::string label;  // what its errors are prefixed with ("model run/best.pt"); empty: nothing
  TiledPrediction prediction;
};

class EnsembleRows {
 public:
  // Every member predicts the same band of the same image (perhaps normalised its own way).
  explicit EnsembleRows(std::vector<EnsembleMember> members);

  bool done() const { return rows_done_ == band_end_; }
  // The rows after the last call's that every member has finished, averaged.
  ProbabilityRows next();
  int64_t height() const { return height_; }
  // The image row after the last one returned (the band's first before any).
  int64_t rows_done() const { return rows_done_; }
  int64_t band_begin() const { return band_begin_; }
  int64_t band_end() const { return band_end_; }
  int64_t width() const { return width_; }

 private:
  // The next rows of member `index`, kept until every member has them.
  void advance(size_t index);

  std::vector<EnsembleMember> members_;
  int64_t height_ = 0, width_ = 0;
  int64_t band_begin_ = 0, band_end_ = 0;
  int64_t rows_done_ = 0;
  std::vector<torch::Tensor> pending_;  // per member: [K, rows, W], its rows from rows_done_ on
};

// The class of every row of the band [rows, W] (uint8, on the rows' device: the argmax
// where the probabilities are), with `each` called on every band of probabilities as it
// is finished (to write them, or to say how far it is).
torch::Tensor class_map(EnsembleRows& rows, const std::function<void(const ProbabilityRows&)>& each = {});

}  // namespace dpunet::infer
