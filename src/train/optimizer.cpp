// Multi-tensor AdamW and SGD as subclasses of LibTorch's, overriding only step(): the
// state (AdamWParamState, SGDParamState) and its serialisation stay LibTorch's.
#include "train/optimizer.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "common/error.h"

namespace dpunet::train {
namespace {

using torch::Tensor;

// The parameters of a group that have a gradient this step (LibTorch's loops skip the rest).
std::vector<Tensor> with_gradients(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    DPUNET_CHECK(!p.grad().is_sparse(), "optimizer: sparse gradients are not supported");
    out.push_back(p);
  }
  return out;
}

// The fused and multi-tensor kernels take lists of one device and dtype.
std::string device_and_dtype(const Tensor& t) {
  return t.device().str() + "/" + std::string(c10::toString(t.scalar_type()));
}

std::vector<Tensor> gradients_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) grads.push_back(p.grad());
  return grads;
}

// The fused implementations can take the loss scaler's inf/NaN flag and skip a step on
// the device (step_unless_found_inf).
class SkipsOnDevice {
 public:
  virtual ~SkipsOnDevice() = default;
  virtual bool skips_on_device() const = 0;
  // One step, skipped where found_inf (1 element, on the parameters' device) is nonzero.
  void step_unless(const Tensor& flag) {
    found_inf_ = flag;
    try {
      take_step();
    } catch (...) {
      found_inf_ = Tensor();
      throw;
    }
    found_inf_ = Tensor();
  }

 protected:
  virtual void take_step() = 0;
  // The flag of the step_unless() in progress; undefined in a plain step().
  const Tensor& found_inf() const { return found_inf_; }

 private:
  Tensor found_inf_;
};

class MultiTensorAdamW : public torch::optim::AdamW, public SkipsOnDevice {
 public:
  MultiTensorAdamW(std::vector<Tensor> params, torch::optim::AdamWOptions options, bool fused)
      : torch::optim::AdamW(std::move(params), options), fused_(fused) {}

  bool skips_on_device() const override { return fused_; }

  // The host counts every step it issues; steps the device skipped are subtracted here,
  // so a checkpoint holds the steps really taken (as with a step not issued at all).
  void save(torch::serialize::OutputArchive& archive) const override {
    const_cast<MultiTensorAdamW*>(this)->settle_skipped_steps();
    torch::optim::AdamW::save(archive);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::optim::AdamW::load(archive);
    skipped_.clear();
  }

  Tensor step(LossClosure closure = nullptr) override {
    DPUNET_CHECK(closure == nullptr, "optimizer: step closures are not supported");
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups_) {
      auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
      DPUNET_CHECK(!o.amsgrad(), "optimizer: amsgrad is not supported");
      // Parameters normally share one step count; one that missed steps (no gradient)
      // has its own, and its own bias correction.
      std::map<std::pair<int64_t, std::string>, std::vector<Tensor>> lists;
      for (const auto& p : with_gradients(group.params())) {
        lists[{state_for(p).step() + 1, device_and_dtype(p)}].push_back(p);
      }
      for (auto& [key, params] : lists) {
        for (const auto& p : params) state_for(p).step(key.first);
        update(params, key.first, o);
      }
    }
    return {};
  }

 private:
  torch::optim::AdamWParamState& state_for(const Tensor& p) {
    auto& slot = state_[p.unsafeGetTensorImpl()];
    if (!slot) {
      auto state = std::make_unique<torch::optim::AdamWParamState>();
      state->step(0);
      state->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
      state->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
      slot = std::move(state);
    }
    return static_cast<torch::optim::AdamWParamState&>(*slot);
  }

  void update(const std::vector<Tensor>& params, int64_t step, const torch::optim::AdamWOptions& o) {
    std::vector<Tensor> grads = gradients_of(params), exp_avgs, exp_avg_sqs;
    for (const auto& p : params) {
      exp_avgs.push_back(state_for(p).exp_avg());
      exp_avg_sqs.push_back(state_for(p).exp_avg_sq());
    }
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    if (fused_) {
      // The kernel reads the step from the device: one scalar, shared by the list, less
      // each parameter's steps skipped on the device when a skip flag is in play.
      const Tensor step_tensor = torch::full({}, static_cast<double>(step), params.front().options().dtype(at::kFloat));
      std::vector<Tensor> steps(params.size(), step_tensor);
      std::vector<Tensor> skipped;
      if (found_inf().defined() || !skipped_.empty()) {  // a plain step() after skips too
        for (const auto& p : params) skipped.push_back(skipped_for(p));
        steps = at::_foreach_sub(steps, skipped);
      }
      at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, o.lr(), beta1, beta2,
                        o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/{},
                        found_inf().defined() ? std::optional<Tensor>(found_inf()) : std::nullopt);
      if (found_inf().defined()) at::_foreach_add_(skipped, found_inf().reshape({}));
      return;
    }
    // LibTorch's AdamW::step, op for op, over the whole list at once.
    if (o.weight_decay() != 0) at::_foreach_mul_(params, 1 - o.lr() * o.weight_decay());
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
    at::_foreach_mul_(exp_avgs, beta1);
    at::_foreach_add_(exp_avgs, grads, 1 - beta1);
    at::_foreach_mul_(exp_avg_sqs, beta2);
    at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2);
    std::vector<Tensor> denom = at::_foreach_sqrt(exp_avg_sqs);
    at::_foreach_div_(denom, std::sqrt(bias_correction2));
    at::_foreach_add_(denom, o.eps());
    at::_foreach_addcdiv_(params, exp_avgs, denom, -o.lr() / bias_correction1);
  }

  // Steps the device skipped for this parameter, not yet taken off its host count.
  Tensor& skipped_for(const Tensor& p) {
    Tensor& count = skipped_[p.unsafeGetTensorImpl()];
    if (!count.defined()) count = torch::zeros({}, p.options().dtype(at::kFloat));
    return count;
  }

  void settle_skipped_steps() {
    for (auto& [key, count] : skipped_) {
      const auto skipped = static_cast<int64_t>(count.item<float>());
      auto it = state_.find(key);
      if (skipped == 0 || it == state_.end()) continue;
      auto& state = static_cast<torch::optim::AdamWParamState&>(*it->second);
      state.step(state.step() - skipped);
      count.zero_();
    }
  }

  void take_step() override { step(); }

  bool fused_;
  std::map<void*, Tensor> skipped_;
};

class MultiTensorSGD : public torch::optim::SGD, public SkipsOnDevice {
 public:
  MultiTensorSGD(std::vector<Tensor> params, torch::optim::SGDOptions options, bool fused)
      : torch::optim::SGD(std::move(params), options), fused_(fused) {}

  // A skipped first step leaves the new buffers at zero, and the next step then starts
  // them as a first step would (momentum * 0 + gradient, without dampening).
  bool skips_on_device() const override { return fused_; }

  Tensor step(LossClosure closure = nullptr) override {
    DPUNET_CHECK(closure == nullptr, "optimizer: step closures are not supported");
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups_) {
      auto& o = static_cast<torch::optim::SGDOptions&>(group.options());
      DPUNET_CHECK(o.momentum() != 0 && o.dampening() == 0 && o.nesterov(),
                   "optimizer: only SGD with Nesterov momentum is supported");
      // Buffers start as the first step's gradient: parameters stepping for the first
      // time go in a list of their own.
      std::map<std::pair<bool, std::string>, std::vector<Tensor>> lists;
      for (const auto& p : with_gradients(group.params())) lists[{!has_buffer(p), device_and_dtype(p)}].push_back(p);
      for (auto& [key, params] : lists) update(params, /*first_step=*/key.first, o);
    }
    return {};
  }

 private:
  bool has_buffer(const Tensor& p) const { return state_.count(p.unsafeGetTensorImpl()) > 0; }

  Tensor& buffer_for(const Tensor& p) {
    auto& slot = state_[p.unsafeGetTensorImpl()];
    if (!slot) {
      auto state = std::make_unique<torch::optim::SGDParamState>();
      state->momentum_buffer(torch::zeros_like(p, at::MemoryFormat::Preserve));
      slot = std::move(state);
    }
    return static_cast<torch::optim::SGDParamState&>(*slot).momentum_buffer();
  }

  void update(const std::vector<Tensor>& params, bool first_step, const torch::optim::SGDOptions& o) {
    std::vector<Tensor> grads = gradients_of(params), buffers;
    for (const auto& p : params) buffers.push_back(buffer_for(p));
    if (fused_) {
      at::_fused_sgd_(params, grads, buffers, o.weight_decay(), o.momentum(), o.lr(), o.dampening(), o.nesterov(),
                      /*maximize=*/false, first_step, /*grad_scale=*/{},
                      found_inf().defined() ? std::optional<Tensor>(found_inf()) : std::nullopt);
      return;
    }
    // LibTorch's SGD::step with Nesterov momentum, op for op, over the whole list.
    std::vector<Tensor> d_p = o.weight_decay() != 0 ? at::_foreach_add(grads, params, o.weight_decay()) : grads;
    if (first_step) {
      for (size_t i = 0; i < params.size(); ++i) buffers[i].copy_(d_p[i]);
    } else {
      at::_foreach_mul_(buffers, o.momentum());
      at::_foreach_add_(buffers, d_p, 1 - o.dampening());
    }
    d_p = at::_foreach_add(d_p, buffers, o.momentum());
    at::_foreach_add_(params, d_p, -o.lr());
  }

  void take_step() override { step(); }

  bool fused_;
};

}  // namespace

OptimizerImplementation parse_optimizer_implementation(const std::string& name) {
  if (name == "fused") return OptimizerImplementation::kFused;
  if (name == "foreach") return OptimizerImplementation::kForeach;
  if (name == "per_parameter") return OptimizerImplementation::kPerParameter;
  DPUNET_FAIL("optimizer.implementation: unknown value '", name, "' (fused, foreach or per_parameter)");
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerSettings& s,
                                                        const std::vector<torch::Tensor>& parameters) {
  const bool fused = s.implementation == OptimizerImplementation::kFused;
  const bool loop = s.implementation == OptimizerImplementation::kPerParameter;
  if (s.name == "sgd") {
    auto options = torch::optim::SGDOptions(s.lr).momentum(s.momentum).nesterov(true).weight_decay(s.weight_decay);
    if (loop) return std::make_unique<torch::optim::SGD>(parameters, options);
    return std::make_unique<MultiTensorSGD>(parameters, options, fused);
  }
  DPUNET_CHECK(s.name == "adamw", "optimizer.name: unknown optimizer '", s.name, "' (adamw or sgd)");
  auto options = torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay);
  if (loop) return std::make_unique<torch::optim::AdamW>(parameters, options);
  return std::make_unique<MultiTensorAdamW>(parameters, options, fused);
}

void step_unless_found_inf(torch::optim::Optimizer& optimizer, const torch::Tensor& found_inf) {
  if (auto* device_skip = dynamic_cast<SkipsOnDevice*>(&optimizer); device_skip && device_skip->skips_on_device()) {
    device_skip->step_unless(found_inf);
    return;
  }
  if (found_inf.item<float>() == 0) optimizer.step();
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

torch::Tensor clip_gradient_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({});
  const std::vector<Tensor> norms = at::_foreach_norm(grads, 2);
  const Tensor total = torch::stack(norms).norm(2);
  // Multiplying by a coefficient clamped to 1 leaves unclipped gradients as they are,
  // without a branch on the host.
  const Tensor coefficient = torch::clamp(max_norm / (total + 1e-6), /*min=*/std::nullopt, /*max=*/1.0);
  at::_foreach_mul_(grads, coefficient);
  return total;
}

}  // namespace dpunet::train
