// An input that gives its rows only from the top down, a read at a time, as an image
// file does: predictions over it must not ask for rows it has let go.
#pragma once

#include <torch/torch.h>

#include "common/error.h"
#include "infer/input_rows.h"

namespace dpunet::test {

class TopDownRows : public infer::InputRows {
 public:
  explicit TopDownRows(torch::Tensor image) : image_(std::move(image)) {}
  int64_t channels() const override { return image_.size(0); }
  int64_t height() const override { return image_.size(1); }
  int64_t width() const override { return image_.size(2); }
  torch::Tensor read(int64_t count) override {
    DPUNET_CHECK(next_ + count <= height(), "rows ", next_, " to ", next_ + count, " of ", height());
    const torch::Tensor rows = image_.slice(1, next_, next_ + count).clone();
    next_ += count;
    return rows;
  }

 private:
  torch::Tensor image_;
  int64_t next_ = 0;
};

}  // namespace dpunet::test
