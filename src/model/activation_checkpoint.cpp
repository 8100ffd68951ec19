// Activation checkpointing as a custom autograd Function. Backward recomputes the block
// and runs a nested backward through it: parameter gradients are accumulated there, once,
// with their hooks; the inputs' gradients are handed back to the outer graph.
#include "model/activation_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/Context.h>
#include <algorithm>
#include <mutex>
#include <torch/autograd.h>

#include "common/error.h"

namespace dpunet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autocast settings of the devices a checkpointed block may run on.
struct AutocastState {
  struct Entry {
    at::DeviceType device;
    bool enabled;
    at::ScalarType dtype;
  };
  std::vector<Entry> entries;

  static AutocastState capture() {
    AutocastState state;
    for (at::DeviceType device : {at::kCPU, at::kCUDA}) {
      state.entries.push_back({device, at::autocast::is_autocast_enabled(device),
                               at::autocast::get_autocast_dtype(device)});
    }
    return state;
  }
  void apply() const {
    for (const Entry& e : entries) {
      at::autocast::set_autocast_enabled(e.device, e.enabled);
      at::autocast::set_autocast_dtype(e.device, e.dtype);
    }
  }
};

// RNG state of the CPU generator and of the CUDA generator of every device in use, so
// dropout-like blocks draw the same numbers when recomputed.
struct RngState {
  std::vector<std::pair<at::Generator, at::Tensor>> states;

  static RngState capture(const std::vector<torch::Tensor>& inputs) {
    RngState rng;
    std::vector<at::Device> devices{at::Device(at::kCPU)};
    for (const auto& t : inputs) {
      if (t.defined() && t.is_cuda() &&
          std::find(devices.begin(), devices.end(), t.device()) == devices.end()) {
        devices.push_back(t.device());
      }
    }
    for (const at::Device& device : devices) {
      at::Generator gen = at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      rng.states.emplace_back(gen, gen.get_state());
    }
    return rng;
  }
  // Installs the captured states; returns the states they replaced.
  RngState swap_in() const {
    RngState previous;
    for (const auto& [gen, state] : states) {
      at::Generator g = gen;
      std::lock_guard<std::mutex> lock(g.mutex());
      previous.states.emplace_back(g, g.get_state());
      g.set_state(state);
    }
    return previous;
  }
};

// Everything backward needs besides the saved tensors; carried in the autograd context.
struct Recompute : torch::CustomClassHolder {
  torch::nn::Module* block = nullptr;
  BlockFunction run;
  RngState rng;
  AutocastState autocast;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // `anchor` is an empty leaf that requires grad: it makes the outputs require grad (and
  // backward run) even when no input does, e.g. for the first block of a network.
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<Recompute> recompute,
                               at::TensorList inputs, const torch::Tensor& anchor) {
    std::vector<torch::Tensor> in(inputs.begin(), inputs.end());
    recompute->rng = RngState::capture(in);
    recompute->autocast = AutocastState::capture();
    variable_list outputs = recompute->run(in);
    ctx->save_for_backward(in);
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(recompute);
    (void)anchor;
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs);
};

// Copies of a module's buffers, put back after recomputation.
std::vector<std::pair<torch::Tensor, torch::Tensor>> snapshot_buffers(torch::nn::Module& block) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;
  for (const auto& buffer : block.buffers()) {
    if (buffer.defined()) saved.emplace_back(buffer, buffer.clone());
  }
  return saved;
}

variable_list CheckpointFunction::backward(AutogradContext* ctx, variable_list grad_outputs) {
  auto recompute = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
  const variable_list saved = ctx->get_saved_variables();

  // Detached copies so the recomputed graph ends here instead of reaching back into the
  // forward graph (which owns the inputs' own history).
  std::vector<torch::Tensor> inputs;
  for (const auto& t : saved) {
    inputs.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);
  }

  // BatchNorm's backward reads the running statistics it saved, so the buffers the
  // recomputation updated are restored only after the gradients are computed.
  const auto buffers = snapshot_buffers(*recompute->block);
  variable_list outputs;
  {
    const AutocastState autocast_before = AutocastState::capture();
    const RngState rng_before = recompute->rng.swap_in();
    recompute->autocast.apply();
    {
      torch::AutoGradMode grad_on(true);
      outputs = recompute->run(inputs);
    }
    autocast_before.apply();
    rng_before.swap_in();
  }

  // Differentiate only the outputs that take part in the graph and got a gradient.
  variable_list roots, root_grads;
  for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i) {
    if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
      roots.push_back(outputs[i]);
      root_grads.push_back(grad_outputs[i]);
    }
  }
  if (!roots.empty()) {
    torch::autograd::backward(roots, root_grads, /*retain_graph=*/false, /*create_graph=*/false);
  }

  // One slot for the Recompute argument, then the inputs, then the anchor.
  variable_list result(1 + inputs.size() + 1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].requires_grad()) result[1 + i] = inputs[i].grad();
  }
  torch::NoGradGuard no_grad;
  for (const auto& [buffer, copy] : buffers) buffer.copy_(copy);
  return result;
}

bool any_requires_grad(const std::vector<torch::Tensor>& tensors) {
  return std::any_of(tensors.begin(), tensors.end(),
                     [](const torch::Tensor& t) { return t.defined() && t.requires_grad(); });
}

}  // namespace

std::vector<torch::Tensor> checkpoint(torch::nn::Module& block, const BlockFunction& run,
                                      const std::vector<torch::Tensor>& inputs) {
  if (!torch::GradMode::is_enabled() ||
      (!any_requires_grad(inputs) && !any_requires_grad(block.parameters()))) {
    return run(inputs);
  }
  auto recompute = c10::make_intrusive<Recompute>();
  recompute->block = &block;
  recompute->run = run;
  const auto anchor = torch::empty({0}, torch::requires_grad());
  return CheckpointFunction::apply(recompute, at::TensorList(inputs), anchor);
}

}  // namespace dpunet::model
