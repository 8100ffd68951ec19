// batch_norm_relu: the fused path as an autograd function over the CUDA kernels, and
// the plain path.
#include "model/batch_norm_relu.h"

#include <torch/torch.h>

#include "common/recompute_tape.h"
#include "model/kernel_support.h"
#include "model/kernel_usage.h"
#include "model/own_kernels.h"

#ifdef DPUNET_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "common/error.h"
#include "model/batch_norm_relu_kernels.h"
#endif

namespace dpunet::model {
namespace {

#ifdef DPUNET_WITH_CUDA_KERNELS
bool is_float_vector(const torch::Tensor& t, const torch::Tensor& x) {
  return t.defined() && t.scalar_type() == torch::kFloat && t.is_contiguous() && t.device() == x.device() &&
         t.dim() == 1 && t.size(0) == x.size(1);
}

cuda::MapType map_type(torch::ScalarType type) {
  switch (type) {
    case torch::kBFloat16: return cuda::MapType::kBFloat16;
    case torch::kHalf: return cuda::MapType::kHalf;
    default: return cuda::MapType::kFloat;
  }
}

void check_kernel(const char* error, const char* what, const torch::Tensor& x) {
  DPUNET_CHECK(error == nullptr, "fused BatchNorm+ReLU ", what, " failed on ", x.device().str(), " for a map of ",
               x.sizes(), ": ", error);
}

torch::Tensor workspace(const torch::Tensor& x) {
  const int64_t channels = x.size(1);
  return torch::empty({cuda::batch_norm_relu_workspace_bytes(x.numel() / channels, channels, multiprocessors())},
                      x.options().dtype(torch::kByte));
}

class BatchNormReluFunction : public torch::autograd::Function<BatchNormReluFunction> {
 public:
  // `reuse`: {mean, invstd} this x's statistics computed before (a checkpointed block's
  // first forward), or empty to compute them (and update the running statistics).
  // `computed` receives the statistics used. With statistics in `reuse` and
  // `write_output` false, the output is left unwritten (OutputUse::kGradientOnly):
  // backward does not read it.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor running_mean,
                               torch::Tensor running_var, double momentum, double eps,
                               const std::vector<torch::Tensor>* reuse, std::vector<torch::Tensor>* computed,
                               bool write_output) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t channels = x.size(1);
    const int64_t rows = x.numel() / channels;
    const torch::Tensor y = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
    const auto type = map_type(x.scalar_type());
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    torch::Tensor save_mean, save_invstd;
    if (!reuse->empty()) {
      save_mean = (*reuse)[0];
      save_invstd = (*reuse)[1];
      if (write_output) {
        check_kernel(
            cuda::batch_norm_relu_apply(type, x.data_ptr(), y.data_ptr(), rows, channels, weight.data_ptr<float>(),
                                        bias.data_ptr<float>(), save_mean.data_ptr<float>(),
                                        save_invstd.data_ptr<float>(), multiprocessors(), stream),
            "forward", x);
      }
    } else {
      const auto stats = x.options().dtype(torch::kFloat);
      save_mean = torch::empty({channels}, stats);
      save_invstd = torch::empty({channels}, stats);
      const torch::Tensor scratch = workspace(x);
      check_kernel(
          cuda::batch_norm_relu_forward(type, x.data_ptr(), y.data_ptr(), rows, channels, weight.data_ptr<float>(),
                                        bias.data_ptr<float>(), running_mean.data_ptr<float>(),
                                        running_var.data_ptr<float>(), momentum, eps, save_mean.data_ptr<float>(),
                                        save_invstd.data_ptr<float>(), scratch.data_ptr(), multiprocessors(), stream),
          "forward", x);
    }
    *computed = {save_mean, save_invstd};
    ctx->save_for_backward({x, weight, bias, save_mean, save_invstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // Raw kernels: a graph of their gradients (create_graph) would silently drop terms.
    DPUNET_CHECK(!torch::GradMode::is_enabled(),
                 "the fused BatchNorm+ReLU kernels have no double backward; set model.fuse_norm_relu false to "
                 "differentiate twice");
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    const c10::cuda::CUDAGuard guard(x.device());
    const torch::Tensor dy = nhwc_aligned(grad_outputs[0].to(x.scalar_type()));
    const int64_t channels = x.size(1);
    const torch::Tensor dx = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
    const torch::Tensor dweight = torch::empty({channels}, weight.options());
    const torch::Tensor dbias = torch::empty({channels}, bias.options());
    const torch::Tensor scratch = workspace(x);
    check_kernel(cuda::batch_norm_relu_backward(
                     map_type(x.scalar_type()), x.data_ptr(), dy.data_ptr(), dx.data_ptr(), x.numel() / channels,
                     channels, weight.data_ptr<float>(), bias.data_ptr<float>(), saved[3].data_ptr<float>(),
                     saved[4].data_ptr<float>(), dweight.data_ptr<float>(), dbias.data_ptr<float>(), scratch.data_ptr(),
                     multiprocessors(), at::cuda::getCurrentCUDAStream().stream()),
                 "backward", x);
    return {dx,
            dweight,
            dbias,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};
#endif

}  // namespace

bool fused_batch_norm_relu_applies(const torch::Tensor& x, const torch::nn::BatchNorm2dImpl& bn) {
#ifdef DPUNET_WITH_CUDA_KERNELS
  const auto& o = bn.options;
  if (!x.is_cuda() || !bn.is_training() || x.dim() != 4 || !o.affine() || !o.track_running_stats() ||
      !o.momentum().has_value() || !own_kernels_run_on(x.device())) {
    return false;
  }
  const auto type = x.scalar_type();
  const int64_t channels = x.size(1);
  return (type == torch::kFloat || type == torch::kBFloat16 || type == torch::kHalf) && channels % 8 == 0 &&
         channels <= cuda::kMaxChannels && x.numel() / channels > 1 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast) && aligned16(x) && is_float_vector(bn.weight, x) &&
         is_float_vector(bn.bias, x) && is_float_vector(bn.running_mean, x) && is_float_vector(bn.running_var, x);
#else
  (void)x, (void)bn;
  return false;
#endif
}

torch::Tensor batch_norm_relu(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, bool allow_fused,
                              std::vector<torch::Tensor>* statistics, OutputUse use) {
  // Inside a checkpointed block: the statistics of the first forward, when recomputing.
  RecomputeTape* tape = RecomputeTape::active();
  const std::vector<torch::Tensor> reuse =
      tape != nullptr && tape->replaying() ? tape->replay_next() : std::vector<torch::Tensor>{};
  std::vector<torch::Tensor> computed;  // stays empty on ATen's path: nothing to reuse
  torch::Tensor y;
  bool left_unwritten = false;
#ifdef DPUNET_WITH_CUDA_KERNELS
  if (allow_fused && fused_batch_norm_relu_applies(x, bn)) {
    {
      torch::NoGradGuard no_grad;
      bn.num_batches_tracked += 1;  // as BatchNorm2d's own forward does in training
    }
    const bool reusable = reuse.size() == 2 && reuse[0].numel() == x.size(1) && reuse[0].device() == x.device();
    const std::vector<torch::Tensor> none;
    left_unwritten = reusable && use == OutputUse::kGradientOnly;
    y = BatchNormReluFunction::apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, *bn.options.momentum(),
                                     bn.options.eps(), reusable ? &reuse : &none, &computed,
                                     /*write_output=*/!left_unwritten);
  }
#endif
  (void)allow_fused;
  KernelUsage::note(&KernelUsage::norm_relu, y.defined());
  if (use == OutputUse::kGradientOnly) KernelUsage::note(&KernelUsage::gradient_only_output, left_unwritten);
  if (!y.defined()) y = bn.forward(x).relu_();
  if (statistics != nullptr) *statistics = computed;
  if (tape != nullptr && !tape->replaying()) tape->record(std::move(computed));
  return y;
}

torch::Tensor batch_norm_relu_replay(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                     double eps, const std::vector<torch::Tensor>& statistics) {
#ifdef DPUNET_WITH_CUDA_KERNELS
  if (statistics.size() == 2) {
    // The running statistics are not read when statistics are reused; an autograd
    // function's tensor arguments must be defined, so the statistics stand in for them.
    std::vector<torch::Tensor> computed;
    return BatchNormReluFunction::apply(x, weight, bias, statistics[0], statistics[1], /*momentum=*/0.0, eps,
                                        &statistics, &computed, /*write_output=*/true);
  }
#endif
  // BatchNorm2d's own call, without running statistics to update: the same kernels, so
  // the same statistics and output.
  return torch::batch_norm(x, weight, bias, /*running_mean=*/{}, /*running_var=*/{}, /*training=*/true,
                           /*momentum=*/0.0, eps, at::globalContext().userEnabledCuDNN())
      .relu_();
}

}  // namespace dpunet::model
