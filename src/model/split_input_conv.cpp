// split_input_conv2d: two convolutions over the weight's input-channel parts, summed.
#include "model/split_input_conv.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace dpunet::model {

at::Tensor split_input_conv2d(const at::Tensor& a, const at::Tensor& b, const at::Tensor& weight,
                              const at::Tensor& bias, int64_t padding) {
  DPUNET_CHECK(a.dim() == 4 && b.dim() == 4 && weight.dim() == 4 && a.size(0) == b.size(0) && a.size(2) == b.size(2) &&
                   a.size(3) == b.size(3) && a.size(1) + b.size(1) == weight.size(1),
               "cannot convolve the concatenation of maps ", a.sizes(), " and ", b.sizes(), " with a weight of ",
               weight.sizes(), " (it needs ", weight.size(1), " input channels in all, maps of one size)");
  // One split, not two narrows: its backward concatenates the parts' gradients in their
  // layout, where each narrow's would zero-fill a whole NCHW weight gradient to be summed.
  const std::vector<at::Tensor> parts = weight.split_with_sizes({a.size(1), b.size(1)}, /*dim=*/1);
  at::Tensor y = at::conv2d(a, parts[0], bias, /*stride=*/1, padding);
  // In place: a convolution's backward does not read its output, and a third map of this
  // size would raise the forward's peak.
  y.add_(at::conv2d(b, parts[1], /*bias=*/{}, /*stride=*/1, padding));
  return y;
}

}  // namespace dpunet::model
