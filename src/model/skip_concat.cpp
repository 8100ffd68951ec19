// concat_skip: ATen's cat, or an autograd function whose backward is the split kernel.
#include "model/skip_concat.h"

#include <torch/torch.h>

#include "common/error.h"
#include "model/concat_split_kernels.h"
#include "model/kernel_support.h"
#include "model/kernel_usage.h"
#include "model/own_kernels.h"
#include "model/skip_window.h"

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace dpunet::model {
namespace {

// The window of the skip map that meets up (model/skip_window.h: its gradient keeps the
// skip map's layout when ATen's cat is the concatenation).
at::Tensor window_meeting(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left) {
  return skip_window(skip, top, left, up.size(2), up.size(3));
}

bool vectorisable(const at::Tensor& t) {
  return t.defined() && t.dim() == 4 && at::isFloatingType(t.scalar_type()) && t.numel() > 0 &&
         t.size(1) * static_cast<int64_t>(t.element_size()) % cuda::kSplitVectorBytes == 0;
}

// Maps the split handles, on any device: NHWC ones, so that the concatenation is NHWC
// whichever path makes it (a checkpointed block's first forward takes ATen's).
bool splittable(const at::Tensor& skip, const at::Tensor& up) {
  return vectorisable(skip) && vectorisable(up) && skip.scalar_type() == up.scalar_type() &&
         skip.device() == up.device() && skip.size(0) == up.size(0) &&
         skip.suggest_memory_format() == at::MemoryFormat::ChannelsLast &&
         up.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

class ConcatSplitFunction : public torch::autograd::Function<ConcatSplitFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& skip, const at::Tensor& up,
                            int64_t top, int64_t left) {
    ctx->saved_data["skip_sizes"] = skip.sizes().vec();
    ctx->saved_data["top"] = top;
    ctx->saved_data["left"] = left;
    return at::cat({window_meeting(skip, up, top, left), up}, /*dim=*/1);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // A raw kernel: a graph of its gradient (create_graph) would silently drop terms.
    DPUNET_CHECK(!torch::GradMode::is_enabled(),
                 "dpunet's concatenation kernel has no double backward; set model.pool_concat_kernels false to "
                 "differentiate twice");
    const at::Tensor grad = nhwc_aligned(grad_outputs[0]);
    const std::vector<int64_t> skip_sizes = ctx->saved_data["skip_sizes"].toIntVector();
    const int64_t skip_channels = skip_sizes[1];
    const int64_t up_channels = grad.size(1) - skip_channels;
    const int64_t element = static_cast<int64_t>(grad.element_size());
    cuda::ConcatGeometry g;
    g.batch = grad.size(0);
    g.height = grad.size(2);
    g.width = grad.size(3);
    g.skip_height = skip_sizes[2];
    g.skip_width = skip_sizes[3];
    g.top = ctx->saved_data["top"].toInt();
    g.left = ctx->saved_data["left"].toInt();
    g.skip_vectors = skip_channels * element / cuda::kSplitVectorBytes;
    g.up_vectors = up_channels * element / cuda::kSplitVectorBytes;

    const auto options = grad.options().memory_format(at::MemoryFormat::ChannelsLast);
    const at::Tensor skip_grad = at::empty(skip_sizes, options);
    zero_outside_window(skip_grad, g.top, g.left, g.height, g.width);  // the split writes the inside
    const at::Tensor up_grad = at::empty({g.batch, up_channels, g.height, g.width}, options);
    if (grad.is_cuda()) {
#ifdef DPUNET_WITH_CUDA_KERNELS
      const c10::cuda::CUDAGuard guard(grad.device());
      const char* error = cuda::split_concat_grad(grad.data_ptr(), skip_grad.data_ptr(), up_grad.data_ptr(), g,
                                                  multiprocessors(), at::cuda::getCurrentCUDAStream().stream());
      DPUNET_CHECK(error == nullptr, "the concatenation's backward split failed on ", grad.device().str(),
                   " for a gradient of ", grad.sizes(), ": ", error);
#else
      DPUNET_FAIL("the concatenation's split kernel is not in this build (", grad.device().str(), ")");
#endif
    } else {
      cuda::split_concat_grad_host(grad.data_ptr(), skip_grad.data_ptr(), up_grad.data_ptr(), g);
    }
    return {skip_grad, up_grad, at::Tensor(), at::Tensor()};
  }
};

void check_window(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left) {
  DPUNET_CHECK(skip.dim() == 4 && up.dim() == 4 && top >= 0 && left >= 0 && top + up.size(2) <= skip.size(2) &&
                   left + up.size(3) <= skip.size(3),
               "cannot concatenate a skip map of ", skip.sizes(), " with an upsampled map of ", up.sizes(),
               " at offset (", top, ", ", left, ")");
}

}  // namespace

bool concat_split_kernel_applies(const at::Tensor& skip, const at::Tensor& up) {
  return splittable(skip, up) && own_kernels_run_on(up.device());
}

at::Tensor concat_skip(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left,
                       bool allow_split_kernel) {
  check_window(skip, up, top, left);
  const bool needs_backward = at::GradMode::is_enabled() && (skip.requires_grad() || up.requires_grad());
  if (needs_backward) {  // without one, ATen's cat is the whole story
    const bool ours = allow_split_kernel && concat_split_kernel_applies(skip, up);
    KernelUsage::note(&KernelUsage::concat, ours);
    if (ours) return ConcatSplitFunction::apply(skip, up, top, left);
  }
  return at::cat({window_meeting(skip, up, top, left), up}, /*dim=*/1);
}

at::Tensor concat_skip_split_backward(const at::Tensor& skip, const at::Tensor& up, int64_t top, int64_t left) {
  check_window(skip, up, top, left);
  DPUNET_CHECK(splittable(skip, up), "the concatenation's split backward cannot take a skip map of ", skip.sizes(), " ",
               skip.scalar_type(), " and an upsampled map of ", up.sizes(), " ", up.scalar_type());
  return ConcatSplitFunction::apply(skip, up, top, left);
}

}  // namespace dpunet::model
