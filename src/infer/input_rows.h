// A network input [C, H, W] read from the top down, a few rows at a time, so that a
// whole slide is never held as floats: overlap-tile prediction needs only the rows its
// next tiles reach. `SharedRows` keeps those rows on the model's device for every model of
// an ensemble at once, each moving down at its own pace.
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

#include "common/error.h"

namespace dpunet::infer {

// An input's rows could not be read (a file damaged part way): its message names the
// file already, and no model is to blame.
class InputReadError : public Error {
 public:
  using Error::Error;
};

// The rows of one input, in order.
class InputRows {
 public:
  virtual ~InputRows() = default;
  virtual int64_t channels() const = 0;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  // The next `count` rows, [C, count, W] float (normalised, on any device); they must exist.
  virtual torch::Tensor read(int64_t count) = 0;
  // The whole input when it is held anyway (a tensor given whole), else undefined: its
  // rows are then views, never copies.
  virtual torch::Tensor whole() const { return {}; }
  // The first channel scaled to 8 bits for overlays, [1, H, W] uint8, once every row was
  // read; undefined where it is not kept.
  virtual torch::Tensor display() { return {}; }
};

// An input held whole.
class TensorRows : public InputRows {
 public:
  explicit TensorRows(torch::Tensor image, torch::Tensor display = {});
  int64_t channels() const override { return image_.size(0); }
  int64_t height() const override { return image_.size(1); }
  int64_t width() const override { return image_.size(2); }
  torch::Tensor read(int64_t count) override;
  torch::Tensor whole() const override { return image_; }
  torch::Tensor display() override { return display_; }

 private:
  torch::Tensor image_, display_;
  int64_t next_ = 0;
};

// The rows of an input that its readers still need, on one device. Each reader asks for
// rows [lo, hi) (hi beyond what was read reads on) and says which rows it is done with;
// rows every reader is done with are let go.
class SharedRows {
 public:
  SharedRows(std::unique_ptr<InputRows> source, const torch::Device& device);

  // A new reader, at the top; returns its id.
  int add_reader();
  // Rows [lo, hi) [C, hi - lo, W] on the device; a view, valid until the next call. Rows
  // a reader said it is done with are gone.
  torch::Tensor rows(int64_t lo, int64_t hi);
  // `reader` needs no row above `row` any more. Said before a reader's first rows (one that
  // predicts a band of the image), the rows above it are read past, not held.
  void release(int reader, int64_t row);
  // Once every reader is done: reads the source's rows no reader asked for, without
  // keeping them (its display() needs every row read).
  void read_to_end();

  int64_t channels() const { return source_->channels(); }
  int64_t height() const { return source_->height(); }
  int64_t width() const { return source_->width(); }
  const torch::Device& device() const { return device_; }
  InputRows& source() { return *source_; }
  // The most rows held at once so far (for tests of the bound).
  int64_t most_rows_held() const { return most_rows_held_; }

 private:
  std::unique_ptr<InputRows> source_;
  torch::Device device_;
  torch::Tensor whole_;  // the source's whole input on the device, where it is held anyway
  torch::Tensor held_;   // [C, rows, W]: rows first_ .. first_ + rows - 1
  int64_t first_ = 0;    // the image row of held_'s first
  int64_t read_ = 0;     // rows read from the source: held_ ends there (with none held, first_ is there or past it)
  // The first row some reader still needs.
  int64_t needed_from() const;
  // Reads and drops the source's rows up to `row`.
  void skip_to(int64_t row);
  // The source's next `count` rows.
  torch::Tensor read_source(int64_t count);
  std::vector<int64_t> done_with_;  // per reader: the rows above this one it needs no more
  int64_t most_rows_held_ = 0;
};

}  // namespace dpunet::infer
