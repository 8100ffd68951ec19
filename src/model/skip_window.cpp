// skip_window: a narrowed view whose gradient keeps the skip map's layout.
#include "model/skip_window.h"

#include <torch/torch.h>

#include "common/error.h"

namespace dpunet::model {
namespace {

at::Tensor window_of(const at::Tensor& map, int64_t top, int64_t left, int64_t height, int64_t width) {
  return map.narrow(2, top, height).narrow(3, left, width);
}

class SkipWindowFunction : public torch::autograd::Function<SkipWindowFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& skip, int64_t top, int64_t left,
                            int64_t height, int64_t width) {
    ctx->saved_data["sizes"] = skip.sizes().vec();
    ctx->saved_data["format"] = static_cast<int64_t>(skip.suggest_memory_format());
    ctx->saved_data["window"] = std::vector<int64_t>{top, left, height, width};
    return window_of(skip, top, left, height, width);
  }

  // Made of differentiable ops (a copy into a slice), so a second derivative holds too.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const std::vector<int64_t> w = ctx->saved_data["window"].toIntVector();
    const auto format = static_cast<at::MemoryFormat>(ctx->saved_data["format"].toInt());
    at::Tensor whole =
        at::empty(ctx->saved_data["sizes"].toIntVector(), grad_outputs[0].options().memory_format(format));
    zero_outside_window(whole, w[0], w[1], w[2], w[3]);
    window_of(whole, w[0], w[1], w[2], w[3]).copy_(grad_outputs[0]);
    return {whole, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor skip_window(const at::Tensor& skip, int64_t top, int64_t left, int64_t height, int64_t width) {
  DPUNET_CHECK(skip.dim() == 4 && top >= 0 && left >= 0 && height >= 0 && width >= 0 && top + height <= skip.size(2) &&
                   left + width <= skip.size(3),
               "the skip map of ", skip.sizes(), " holds no ", height, "x", width, " window at (", top, ", ", left,
               ")");
  if (height == skip.size(2) && width == skip.size(3)) return skip;
  const bool needs_backward = at::GradMode::is_enabled() && skip.requires_grad();
  if (!needs_backward) return window_of(skip, top, left, height, width);
  return SkipWindowFunction::apply(skip, top, left, height, width);
}

void zero_outside_window(const at::Tensor& map, int64_t top, int64_t left, int64_t height, int64_t width) {
  const int64_t bottom = map.size(2) - top - height, right = map.size(3) - left - width;
  if (top > 0) map.narrow(2, 0, top).zero_();
  if (bottom > 0) map.narrow(2, top + height, bottom).zero_();
  const at::Tensor band = map.narrow(2, top, height);
  if (left > 0) band.narrow(3, 0, left).zero_();
  if (right > 0) band.narrow(3, left + width, right).zero_();
}

}  // namespace dpunet::model
