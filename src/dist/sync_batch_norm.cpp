// SyncBatchNorm's autograd function. Forward: each rank's per-channel mean and sum of
// squared deviations (one Welford pass), all-gathered with counts and combined with
// Chan's parallel formula. Backward: sum(dy) and sum(dy * xhat) all-reduced; weight and
// bias gradients stay local (DistributedDataParallel averages them like any other).
// A checkpointed block's recomputation reuses its first forward's statistics (RecomputeTape).
// Statistics, normalisation and gradients are computed in float32 (float64 for double
// input) whatever the input's type, as ATen's batch norm does under autocast: a bf16
// mean would be rounded to 8 bits before the ranks' means are combined, shifting every
// normalised value of a channel with a large mean. The output has the input's type.
// Nothing here reads a value back to the host: the gathered statistics and their total
// stay on the device, so a GPU forward never waits for the GPU at a norm layer.
#include "dist/sync_batch_norm.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/recompute_tape.h"

namespace dpunet::dist {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CommHolder : torch::CustomClassHolder {
  explicit CommHolder(Communicator* c) : comm(c) {}
  Communicator* comm;
};

std::vector<int64_t> reduce_dims(const torch::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

torch::ScalarType compute_type(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// [C] -> [1, C, 1, ...] to broadcast against x.
torch::Tensor per_channel(const torch::Tensor& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

// The whole batch's per-channel statistics, combined across ranks.
struct GlobalStatistics {
  torch::Tensor mean;   // [C] float64
  torch::Tensor m2;     // [C] float64, sum of squared deviations from mean
  torch::Tensor total;  // [] float64: values per channel over every rank
};

GlobalStatistics global_statistics(const torch::Tensor& xc, Communicator& comm) {
  const auto dims = reduce_dims(xc);
  const int64_t channels = xc.size(1);
  const auto stats_options = xc.options().dtype(torch::kFloat64);
  const double local_count = static_cast<double>(xc.numel() / channels);
  // The variance needs two values per channel. Ranks usually hold equal shares, so a
  // share of one value cannot make two anywhere; a rank with another share is not
  // known here without a host read, and its running variance divides by at least 1.
  DPUNET_CHECK(local_count * comm.world_size() > 1 || (local_count == 0 && comm.world_size() > 1),
               "SyncBatchNorm: needs more than one value per channel across all ranks, got ", local_count,
               " on each of ", comm.world_size(), " rank(s) (input ", xc.sizes(), ")");
  // A rank with no values adds nothing (the mean of nothing would be NaN, and NaN * 0
  // is still NaN in the combination below).
  // One Welford pass for both (ATen's var_mean), instead of a mean and then a pass over
  // the squared deviations from it.
  torch::Tensor local_mean = torch::zeros({channels}, stats_options);
  torch::Tensor local_m2 = torch::zeros({channels}, stats_options);
  if (local_count > 0) {
    const auto [variance, mean] = torch::var_mean(xc, dims, /*correction=*/0, /*keepdim=*/false);
    local_mean = mean.to(torch::kFloat64);
    local_m2 = variance.to(torch::kFloat64) * local_count;
  }
  // [mean (C), m2 (C), count (1)] per rank.
  const torch::Tensor packed = torch::cat({local_mean, local_m2, torch::full({1}, local_count, stats_options)});
  // Alone, the gather is the rank's own statistics: no collective (and its event, wait
  // and watchdog entry at every norm layer of every step), the same values.
  torch::Tensor gathered = packed;
  if (comm.world_size() > 1) {
    gathered = torch::empty({comm.world_size() * packed.numel()}, stats_options);
    comm.all_gather_async(packed, gathered)->wait_on_stream();  // only device work reads it
  }
  gathered = gathered.view({comm.world_size(), packed.numel()});
  const torch::Tensor means = gathered.narrow(1, 0, channels);
  const torch::Tensor m2s = gathered.narrow(1, channels, channels);
  const torch::Tensor counts = gathered.narrow(1, 2 * channels, 1);  // [W, 1]
  GlobalStatistics s;
  s.total = counts.sum();
  // Every share empty (no values anywhere): a mean of 0, not 0 / 0.
  s.mean = (means * counts).sum(0) / s.total.clamp_min(1);
  s.m2 = (m2s + counts * (means - s.mean).square()).sum(0);
  return s;
}

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static constexpr size_t kForwardArguments = 11;  // x, weight, bias, ..., computed
  // `reuse`: what `computed` held after the first forward of a checkpointed block, when
  // this call is its recomputation in backward (`replaying`): the same statistics, with no
  // collective inside backward, where it would queue among the gradient buckets'
  // all-reduces, and no running-statistics update (the first forward made it).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double eps, double momentum, c10::intrusive_ptr<CommHolder> holder, bool replaying,
                               const std::vector<torch::Tensor>* reuse, std::vector<torch::Tensor>* computed) {
    const torch::Tensor xc = x.to(compute_type(x));
    torch::Tensor mean, invstd, total;
    if (replaying) {
      // A recomputation must find its forward's statistics: gathering again here would
      // put a collective back inside backward, out of step with the gradient buckets.
      DPUNET_CHECK(reuse->size() == 3 && (*reuse)[0].numel() == x.size(1) && (*reuse)[0].device() == x.device() &&
                       (*reuse)[2].device() == x.device(),
                   "SyncBatchNorm: the recomputation of a checkpointed block found no statistics of its forward "
                   "(the blocks ran in another order than they were recorded)");
      mean = (*reuse)[0];
      invstd = (*reuse)[1];
      total = (*reuse)[2];
    } else {
      const GlobalStatistics s = global_statistics(xc, *holder->comm);
      mean = s.mean;
      invstd = (s.m2 / s.total.clamp_min(1) + eps).rsqrt();
      total = s.total;
      // Unbiased, as BatchNorm's running variance. A step with fewer than two values over
      // all ranks has no variance to add: the running statistics stay as they were
      // (chosen on the device: no read-back).
      const torch::Tensor unbiased = s.m2 / (total - 1).clamp_min(1);
      const torch::Tensor counted = total.ge(2);
      running_mean.copy_(torch::where(
          counted, running_mean * (1 - momentum) + mean.to(running_mean.scalar_type()) * momentum, running_mean));
      running_var.copy_(torch::where(
          counted, running_var * (1 - momentum) + unbiased.to(running_var.scalar_type()) * momentum, running_var));
      *computed = {mean, invstd, total};
    }
    const torch::Tensor mean_c = mean.to(xc.scalar_type());
    const torch::Tensor invstd_c = invstd.to(xc.scalar_type());
    ctx->save_for_backward({x, weight, mean_c, invstd_c, total.to(xc.scalar_type())});
    ctx->saved_data["comm"] = c10::IValue::make_capsule(holder);
    // y = (x - mean) * invstd * weight + bias as x * scale + shift: one pass over x, as
    // ATen's own batch norm computes it.
    const torch::Tensor scale = invstd_c * weight.to(xc.scalar_type());
    const torch::Tensor shift = bias.to(xc.scalar_type()) - mean_c * scale;
    return torch::addcmul(per_channel(shift, xc), xc, per_channel(scale, xc)).to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &total = saved[4];
    Communicator& comm = *c10::static_intrusive_pointer_cast<CommHolder>(ctx->saved_data["comm"].toCapsule())->comm;
    const torch::Tensor xc = x.to(compute_type(x));
    const torch::Tensor dy = grad_outputs[0].to(xc.scalar_type()).contiguous(xc.suggest_memory_format());
    // sum(dy) and sum(dy * xhat) per channel in one fused pass: inference-mode batch norm's
    // backward reduces exactly these (as its bias and weight gradients) with `mean` and
    // `running_var + eps` = 1 / invstd^2 for its statistics, and (x - mean) formed inside
    // the reduction, so a channel with a large mean keeps its precision.
    torch::Tensor sum_dy = torch::zeros({x.size(1)}, xc.options()), sum_dy_xhat = torch::zeros_like(sum_dy);
    if (x.numel() > 0) {  // an empty share adds nothing (and ATen's kernel would divide by its 0 values)
      const auto reduced =
          torch::native_batch_norm_backward(dy, xc, weight.to(xc.scalar_type()), mean, invstd.pow(-2), mean, invstd,
                                            /*train=*/false, /*eps=*/0.0, {false, true, true});
      sum_dy_xhat = std::get<1>(reduced);
      sum_dy = std::get<2>(reduced);
    }
    // Global sums over every rank's share of the batch.
    torch::Tensor global = torch::cat({sum_dy, sum_dy_xhat});
    if (comm.world_size() > 1) comm.all_reduce_async(global, ReduceOp::kSum)->wait_on_stream();  // device work reads it
    const int64_t channels = x.size(1);
    const torch::Tensor mean_dy = global.narrow(0, 0, channels) / total;
    const torch::Tensor mean_dy_xhat = global.narrow(0, channels, channels) / total;
    // dx = (dy - mean_dy - xhat * mean_dy_xhat) * invstd * weight, per channel a * dy + b * x + c:
    // two passes over the maps.
    const torch::Tensor a = invstd * weight.to(xc.scalar_type());
    const torch::Tensor b = -a * invstd * mean_dy_xhat;
    const torch::Tensor c = -a * mean_dy - b * mean;
    const torch::Tensor dx =
        torch::addcmul(per_channel(c, xc), xc, per_channel(b, xc)).addcmul_(dy, per_channel(a, xc));
    // One slot per argument of forward; only x, weight and bias have gradients.
    variable_list grads(kForwardArguments);
    grads[0] = dx.to(x.scalar_type());
    grads[1] = sum_dy_xhat.to(weight.scalar_type());
    grads[2] = sum_dy.to(weight.scalar_type());
    return grads;
  }
};

}  // namespace

SyncBatchNormImpl::SyncBatchNormImpl(SyncBatchNormOptions options, std::shared_ptr<Communicator> comm)
    : options_(options), comm_(std::move(comm)) {
  DPUNET_CHECK(options_.num_features > 0, "SyncBatchNorm: num_features must be > 0, got ", options_.num_features);
  DPUNET_CHECK(comm_ != nullptr, "SyncBatchNorm: needs a communicator (norm sync_batch is for distributed runs)");
  reset();
}

void SyncBatchNormImpl::reset() {
  weight = register_parameter("weight", torch::ones({options_.num_features}));
  bias = register_parameter("bias", torch::zeros({options_.num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({options_.num_features}));
  running_var = register_buffer("running_var", torch::ones({options_.num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor SyncBatchNormImpl::forward(const torch::Tensor& input) {
  DPUNET_CHECK(input.dim() >= 2 && input.size(1) == options_.num_features, "SyncBatchNorm: expected input [N, ",
               options_.num_features, ", ...], got ", input.sizes());
  if (!is_training()) {
    return torch::batch_norm(input, weight, bias, running_mean, running_var, /*training=*/false, options_.momentum,
                             options_.eps, /*cudnn_enabled=*/true);
  }
  DPUNET_CHECK(input.device() == comm_->device(), "SyncBatchNorm: input is on ", input.device().str(), " but the ",
               comm_->backend(), " communicator works on ", comm_->device().str());
  // Inside a checkpointed block: the first forward's statistics, when recomputing.
  RecomputeTape* tape = RecomputeTape::active();
  if (tape == nullptr || !tape->replaying()) {  // a recomputation is not another batch
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  const std::vector<torch::Tensor> reuse =
      tape != nullptr && tape->replaying() ? tape->replay_next() : std::vector<torch::Tensor>{};
  std::vector<torch::Tensor> computed;
  // In its own memory format: an NHWC map stays NHWC for the layers after this one.
  torch::Tensor y = SyncBatchNormFunction::apply(input.contiguous(input.suggest_memory_format()), weight, bias,
                                                 running_mean, running_var, options_.eps, options_.momentum,
                                                 c10::make_intrusive<CommHolder>(comm_.get()),
                                                 tape != nullptr && tape->replaying(), &reuse, &computed);
  if (tape != nullptr && !tape->replaying()) tape->record(std::move(computed));
  return y;
}

}  // namespace dpunet::dist
