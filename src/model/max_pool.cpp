// max_pool_2x2: ATen's pooling, or an autograd function over the kernels without indices.
#include "model/max_pool.h"

#include <torch/torch.h>

#include "common/error.h"
#include "model/kernel_support.h"
#include "model/kernel_usage.h"
#include "model/max_pool_kernels.h"
#include "model/own_kernels.h"

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace dpunet::model {
namespace {

cuda::PoolGeometry geometry(const at::Tensor& x) {
  cuda::PoolGeometry g;
  g.batch = x.size(0);
  g.channels = x.size(1);
  g.height = x.size(2);
  g.width = x.size(3);
  return g;
}

// Maps the kernels handle, on any device.
bool poolable(const at::Tensor& x) {
  const auto type = x.scalar_type();
  return x.defined() && x.dim() == 4 && (type == at::kFloat || type == at::kBFloat16 || type == at::kHalf) &&
         x.size(0) > 0 && x.size(1) > 0 && x.size(2) >= 2 && x.size(3) >= 2 &&
         x.size(1) * static_cast<int64_t>(x.element_size()) % 16 == 0 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast) && aligned16(x);
}

#ifdef DPUNET_WITH_CUDA_KERNELS
cuda::PoolType pool_type(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kBFloat16: return cuda::PoolType::kBFloat16;
    case at::kHalf: return cuda::PoolType::kHalf;
    default: return cuda::PoolType::kFloat;
  }
}

void check_kernel(const char* error, const char* what, const at::Tensor& x) {
  DPUNET_CHECK(error == nullptr, "max pooling ", what, " failed on ", x.device().str(), " for a map of ", x.sizes(),
               ": ", error);
}
#endif

template <typename T>
void forward_host(const at::Tensor& x, const at::Tensor& y) {
  cuda::max_pool_forward_host(x.const_data_ptr<T>(), y.mutable_data_ptr<T>(), geometry(x));
}

template <typename T>
void backward_host(const at::Tensor& x, const at::Tensor& dy, const at::Tensor& dx) {
  cuda::max_pool_backward_host(x.const_data_ptr<T>(), dy.const_data_ptr<T>(), dx.mutable_data_ptr<T>(), geometry(x));
}

class MaxPoolFunction : public torch::autograd::Function<MaxPoolFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    const cuda::PoolGeometry g = geometry(x);
    const at::Tensor y = at::empty({g.batch, g.channels, g.out_height(), g.out_width()},
                                   x.options().memory_format(at::MemoryFormat::ChannelsLast));
    if (x.is_cuda()) {
#ifdef DPUNET_WITH_CUDA_KERNELS
      const c10::cuda::CUDAGuard guard(x.device());
      check_kernel(cuda::max_pool_forward(pool_type(x), x.data_ptr(), y.data_ptr(), g, multiprocessors(),
                                          at::cuda::getCurrentCUDAStream().stream()),
                   "forward", x);
#else
      DPUNET_FAIL("dpunet's max pooling kernels are not in this build (", x.device().str(), ")");
#endif
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "max_pool_2x2",
                                      [&] { forward_host<scalar_t>(x, y); });
    }
    ctx->save_for_backward({x});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // A raw kernel: a graph of its gradient (create_graph) would silently drop terms.
    DPUNET_CHECK(!torch::GradMode::is_enabled(),
                 "dpunet's max pooling kernel has no double backward; set model.pool_concat_kernels false to "
                 "differentiate twice");
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor dy = nhwc_aligned(grad_outputs[0]);
    const cuda::PoolGeometry g = geometry(x);
    const auto options = x.options().memory_format(at::MemoryFormat::ChannelsLast);
    const at::Tensor dx = at::empty(x.sizes(), options);
    // An odd last row or column is in no window: its gradient is zero.
    if (g.height % 2 != 0) dx.narrow(2, g.height - 1, 1).zero_();
    if (g.width % 2 != 0) dx.narrow(3, g.width - 1, 1).zero_();
    if (x.is_cuda()) {
#ifdef DPUNET_WITH_CUDA_KERNELS
      const c10::cuda::CUDAGuard guard(x.device());
      check_kernel(cuda::max_pool_backward(pool_type(x), x.data_ptr(), dy.data_ptr(), dx.data_ptr(), g,
                                           multiprocessors(), at::cuda::getCurrentCUDAStream().stream()),
                   "backward", x);
#else
      DPUNET_FAIL("dpunet's max pooling kernels are not in this build (", x.device().str(), ")");
#endif
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "max_pool_2x2_backward",
                                      [&] { backward_host<scalar_t>(x, dy, dx); });
    }
    return {dx};
  }
};

}  // namespace

bool max_pool_kernels_apply(const at::Tensor& x) {
  return poolable(x) && own_kernels_run_on(x.device());
}

at::Tensor max_pool_2x2(const at::Tensor& x, bool allow_kernels) {
  const bool ours = allow_kernels && max_pool_kernels_apply(x);
  KernelUsage::note(&KernelUsage::max_pool, ours);
  if (ours) return MaxPoolFunction::apply(x);
  return at::max_pool2d(x, /*kernel_size=*/{2, 2});
}

at::Tensor max_pool_2x2_without_indices(const at::Tensor& x) {
  DPUNET_CHECK(poolable(x), "max pooling without indices cannot take a map of ", x.sizes(), " ", x.scalar_type(),
               " (needs a dense NHWC float, bfloat16 or half map, at least 2x2, of 16-byte channel rows)");
  return MaxPoolFunction::apply(x);
}

}  // namespace dpunet::model
