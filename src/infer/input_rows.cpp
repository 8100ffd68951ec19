// TensorRows and SharedRows.
#include "infer/input_rows.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"

namespace dpunet::infer {
namespace {

// Rows read from a source at least at a time: fewer, larger copies to the device.
constexpr int64_t kReadRows = 64;

}  // namespace

TensorRows::TensorRows(torch::Tensor image, torch::Tensor display)
    : image_(std::move(image)), display_(std::move(display)) {
  DPUNET_CHECK(image_.dim() == 3, "predict: image must be [C, H, W], got ", image_.sizes());
}

torch::Tensor TensorRows::read(int64_t count) {
  DPUNET_CHECK(count >= 0 && next_ + count <= height(), "predict: rows ", next_, " to ", next_ + count, " asked of a ",
               height(), "-row image");
  const torch::Tensor rows = image_.slice(1, next_, next_ + count);
  next_ += count;
  return rows;
}

SharedRows::SharedRows(std::unique_ptr<InputRows> source, const torch::Device& device)
    : source_(std::move(source)), device_(device) {
  DPUNET_CHECK(source_->height() > 0 && source_->width() > 0, "predict: the image is empty (", source_->height(), "x",
               source_->width(), ")");
  const torch::Tensor whole = source_->whole();
  if (whole.defined()) {
    whole_ = whole.to(device_);
    most_rows_held_ = height();
  }
}

int SharedRows::add_reader() {
  done_with_.push_back(0);
  return static_cast<int>(done_with_.size()) - 1;
}

torch::Tensor SharedRows::rows(int64_t lo, int64_t hi) {
  DPUNET_CHECK(0 <= lo && lo <= hi && hi <= height(), "predict: rows ", lo, " to ", hi, " of a ", height(),
               "-row image");
  if (whole_.defined()) return whole_.slice(1, lo, hi);
  // With nothing held, the rows above where every reader needs are read past, not held
  // (only now: a reader that said so at its start may have come before the others).
  if (!held_.defined()) first_ = std::max(first_, std::min(needed_from(), height()));
  DPUNET_CHECK(lo >= first_, "predict: row ", lo, " was asked for after every reader was done with it");
  skip_to(first_);
  const int64_t held = held_.defined() ? held_.size(1) : 0;
  if (hi > first_ + held) {
    const int64_t next = first_ + held;
    const int64_t count = std::min(height() - next, std::max(hi - next, kReadRows));
    torch::Tensor more = read_source(count);
    // From pinned memory without waiting: a blocking copy from pageable memory would wait
    // for the tiles queued on the GPU, and the next rows' decoding would no longer overlap
    // them. (The caching host allocator keeps the pinned block until the copy is done.)
    const bool to_gpu = device_.is_cuda() && more.device().is_cpu();
    if (to_gpu) more = more.pin_memory();
    more = more.to(device_, torch::kFloat, /*non_blocking=*/to_gpu);
    // New storage of exactly the rows held: what release() trimmed off is freed here.
    held_ = held_.defined() ? torch::cat({held_, more}, 1) : more;
    most_rows_held_ = std::max(most_rows_held_, held_.size(1));
  }
  return held_.slice(1, lo - first_, hi - first_);
}

void SharedRows::release(int reader, int64_t row) {
  auto& done = done_with_.at(static_cast<size_t>(reader));
  done = std::max(done, row);
  if (whole_.defined() || !held_.defined()) return;
  const int64_t drop = std::min(needed_from() - first_, held_.size(1));
  if (drop <= 0) return;
  held_ = held_.slice(1, drop);  // a view until the next read copies the rest
  first_ += drop;
  if (held_.size(1) == 0) held_ = torch::Tensor();  // every row read is done with: its memory goes
}

int64_t SharedRows::needed_from() const {
  return done_with_.empty() ? 0 : *std::min_element(done_with_.begin(), done_with_.end());
}

void SharedRows::skip_to(int64_t row) {
  if (whole_.defined()) return;
  while (read_ < row) read_source(std::min(row - read_, kReadRows));
}

void SharedRows::read_to_end() {
  if (whole_.defined()) return;
  held_ = torch::Tensor();
  first_ = height();
  skip_to(first_);
}

torch::Tensor SharedRows::read_source(int64_t count) {
  try {
    torch::Tensor rows = source_->read(count);
    read_ += count;
    return rows;
  } catch (const Error& e) {
    // A file damaged part way (named in the message); running out of memory is not a
    // read error, and is said with the input's name by the caller.
    throw InputReadError(e.what());
  }
}

}  // namespace dpunet::infer
