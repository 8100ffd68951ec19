// EnsembleRows.
#include "infer/ensemble_rows.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/exception_message.h"

namespace dpunet::infer {
namespace {

// The member's next rows; its errors say which model it is.
ProbabilityRows next_rows(EnsembleMember& member) {
  try {
    return member.prediction.next();
  } catch (const InputReadError&) {
    throw;  // the input's, whichever model read it first
  } catch (const std::exception& e) {
    if (member.label.empty()) throw;
    throw Error(member.label + ": " + exception_message(e));
  }
}

}  // namespace

EnsembleRows::EnsembleRows(std::vector<EnsembleMember> members) : members_(std::move(members)) {
  DPUNET_CHECK(!members_.empty(), "predict: an ensemble needs a model");
  const TiledPrediction& first = members_.front().prediction;
  height_ = first.height();
  width_ = first.width();
  band_begin_ = first.band_begin();
  band_end_ = first.band_end();
  rows_done_ = band_begin_;
  for (const EnsembleMember& m : members_) {
    DPUNET_CHECK(m.prediction.height() == height_ && m.prediction.width() == width_, "predict: ", m.label, " sees a ",
                 m.prediction.height(), "x", m.prediction.width(), " image, the first model ", height_, "x", width_);
    DPUNET_CHECK(m.prediction.band_begin() == band_begin_ && m.prediction.band_end() == band_end_, "predict: ", m.label,
                 " predicts rows ", m.prediction.band_begin(), " to ", m.prediction.band_end(), ", the first model ",
                 band_begin_, " to ", band_end_);
  }
}

void EnsembleRows::advance(size_t index) {
  const ProbabilityRows rows = next_rows(members_[index]);
  torch::Tensor& pending = pending_[index];
  // A member's rows come in order: these follow the ones it has pending.
  pending = pending.defined() ? torch::cat({pending, rows.probabilities}, 1) : rows.probabilities;
}

ProbabilityRows EnsembleRows::next() {
  DPUNET_CHECK(!done(), "predict: every row of the image was already returned");
  if (members_.size() == 1) {
    EnsembleMember& only = members_.front();
    ProbabilityRows rows = next_rows(only);
    rows_done_ = only.prediction.rows_done();
    return rows;
  }
  pending_.resize(members_.size());
  while (true) {
    // The rows every member has finished end where the one furthest behind stands.
    size_t behind = 0;
    int64_t ready = band_end_;
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].prediction.rows_done() < ready) {
        ready = members_[i].prediction.rows_done();
        behind = i;
      }
    }
    if (ready > rows_done_) {
      const int64_t count = ready - rows_done_;
      torch::Tensor sum = pending_[0].slice(1, 0, count).clone();
      for (size_t i = 1; i < members_.size(); ++i) sum += pending_[i].slice(1, 0, count);
      // Views of the rest until the next rows are appended.
      for (torch::Tensor& pending : pending_) pending = pending.slice(1, count);
      rows_done_ = ready;
      return {rows_done_ - count, sum / static_cast<double>(members_.size())};
    }
    advance(behind);
  }
}

torch::Tensor class_map(EnsembleRows& rows, const std::function<void(const ProbabilityRows&)>& each) {
  torch::Tensor classes;
  while (!rows.done()) {
    const ProbabilityRows band = rows.next();
    if (!classes.defined()) {
      classes = torch::empty({rows.band_end() - rows.band_begin(), rows.width()},
                             band.probabilities.options().dtype(torch::kByte));
    }
    const int64_t at = band.row - rows.band_begin();
    classes.slice(0, at, at + band.probabilities.size(1)).copy_(band.probabilities.argmax(0));
    if (each) each(band);
  }
  return classes;
}

}  // namespace dpunet::infer
