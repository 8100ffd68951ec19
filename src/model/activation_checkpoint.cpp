// Activation checkpointing as a custom autograd Function. Backward recomputes the block
// and runs a nested backward through it: parameter gradients are accumulated there, once,
// with their hooks; the inputs' gradients are handed back to the outer graph.
#include "model/activation_checkpoint.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/engine.h>
#include <algorithm>
#include <mutex>

#include "common/error.h"
#include "common/recompute_tape.h"
#include "model/autocast_state.h"

namespace dpunet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// RNG state of the CPU generator and of the CUDA generator of every device in use, so
// dropout-like blocks draw the same numbers when recomputed.
struct RngState {
  std::vector<std::pair<at::Generator, at::Tensor>> states;

  static RngState capture(const std::vector<torch::Tensor>& inputs) {
    RngState rng;
    std::vector<at::Device> devices{at::Device(at::kCPU)};
    for (const auto& t : inputs) {
      if (t.defined() && t.is_cuda() && std::find(devices.begin(), devices.end(), t.device()) == devices.end()) {
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
  RecomputeTape tape;  // what the first forward leaves for the recomputation
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // `anchor` is an empty leaf that requires grad: it makes the outputs require grad (and
  // backward run) even when no input does, e.g. for the first block of a network.
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<Recompute> recompute, at::TensorList inputs,
                               const torch::Tensor& anchor) {
    std::vector<torch::Tensor> in(inputs.begin(), inputs.end());
    recompute->rng = RngState::capture(in);
    recompute->autocast = AutocastState::capture();
    variable_list outputs;
    {
      RecomputeTape::Scope recording(recompute->tape, /*replay=*/false);
      outputs = recompute->run(in);
    }
    ctx->save_for_backward(in);
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(recompute);
    (void)anchor;
    return outputs;
  }

  // Takes the gradients by reference (CppNode passes its own list) so that it can let go
  // of them: see run_nested_backward.
  static variable_list backward(AutogradContext* ctx, variable_list& grad_outputs);
};

// The root of a nested backward: hands its gradients over on first use and keeps no
// reference, so the engine frees each one as soon as the node consuming it is done.
class HandOver : public torch::autograd::Node {
 public:
  // The engine feeds a root one input; `trigger` is a scalar standing in for it.
  HandOver(variable_list grads, const torch::Tensor& trigger) : grads_(std::move(grads)) {
    add_input_metadata(trigger);
  }
  variable_list apply(variable_list&& /*unused*/) override { return std::move(grads_); }

 private:
  variable_list grads_;
};

// Backpropagates `grads` through the recomputed `outputs`, accumulating into leaves. Both
// lists are consumed: holding either while the engine runs would keep a full activation
// map (the block's output, or the gradient arriving at it) alive for the whole backward.
void run_nested_backward(variable_list&& outputs, variable_list&& grads) {
  torch::autograd::edge_list roots;
  variable_list root_grads;
  for (size_t i = 0; i < outputs.size() && i < grads.size(); ++i) {
    if (outputs[i].requires_grad() && grads[i].defined()) {
      roots.push_back(torch::autograd::impl::gradient_edge(outputs[i]));
      root_grads.push_back(std::move(grads[i]));
    }
  }
  outputs.clear();
  grads.clear();
  if (roots.empty()) return;
  const torch::Tensor trigger = torch::zeros({});
  auto seed = std::make_shared<HandOver>(std::move(root_grads), trigger);
  seed->set_next_edges(std::move(roots));
  torch::autograd::Engine::get_default_engine().execute({torch::autograd::Edge(seed, 0)}, {trigger},
                                                        /*keep_graph=*/false,
                                                        /*create_graph=*/false, /*accumulate_grad=*/true);
}

// Copies of a module's buffers, put back after recomputation.
std::vector<std::pair<torch::Tensor, torch::Tensor>> snapshot_buffers(torch::nn::Module& block) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;
  for (const auto& buffer : block.buffers()) {
    if (buffer.defined()) saved.emplace_back(buffer, buffer.clone());
  }
  return saved;
}

variable_list CheckpointFunction::backward(AutogradContext* ctx, variable_list& grad_outputs) {
  // The recomputed graph is run by a nested backward without create_graph, and the
  // inputs' gradients come from detached copies: a second derivative would be wrong.
  DPUNET_CHECK(!torch::GradMode::is_enabled(),
               "checkpointed blocks have no double backward (create_graph); set model.checkpointing none to "
               "differentiate twice");
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
    const RngState rng_before = recompute->rng.swap_in();
    {
      const AutocastState::Scope as_first(recompute->autocast);
      torch::AutoGradMode grad_on(true);
      RecomputeTape::Scope replaying(recompute->tape, /*replay=*/true);
      outputs = recompute->run(inputs);
    }
    rng_before.swap_in();
  }

  run_nested_backward(std::move(outputs), std::move(grad_outputs));

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
  if (!torch::GradMode::is_enabled() || (!any_requires_grad(inputs) && !any_requires_grad(block.parameters()))) {
    RecomputeTape::Suspend not_recorded;
    return run(inputs);
  }
  auto recompute = c10::make_intrusive<Recompute>();
  recompute->block = &block;
  recompute->run = run;
  const auto anchor = torch::empty({0}, torch::requires_grad());
  return CheckpointFunction::apply(recompute, at::TensorList(inputs), anchor);
}

}  // namespace dpunet::model
