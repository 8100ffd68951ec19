// Activation checkpointing as a custom autograd Function. Backward recomputes the block
// and runs a nested backward through it: parameter gradients are accumulated there, once,
// with their hooks; the inputs' gradients are handed back to the outer graph.
#include "model/activation_checkpoint.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/autograd.h>
#include <algorithm>
#include <mutex>

#include "common/error.h"
#include "common/recompute_tape.h"
#include "model/autocast_state.h"
#include "model/nested_backward.h"

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
  // Installs the captured states; returns the states they replaced. All or none: a
  // generator that refuses its state puts back those already swapped.
  RngState swap_in() const {
    RngState previous;
    try {
      for (const auto& [gen, state] : states) {
        at::Generator g = gen;
        std::lock_guard<std::mutex> lock(g.mutex());
        auto replaced = g.get_state();
        g.set_state(state);
        previous.states.emplace_back(g, std::move(replaced));
      }
    } catch (...) {
      for (auto& [g, state] : previous.states) {
        std::lock_guard<std::mutex> lock(g.mutex());
        g.set_state(state);
      }
      throw;
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

// Puts a module's buffers back as they were when it was made, however the scope ends: a
// failed recomputation (out of memory, which the largest-batch search recovers from) must
// not leave BatchNorm's running statistics updated twice.
class BufferRestore {
 public:
  explicit BufferRestore(torch::nn::Module& block) {
    for (const auto& buffer : block.buffers()) {
      if (buffer.defined()) saved_.emplace_back(buffer, buffer.clone());
    }
  }
  BufferRestore(const BufferRestore&) = delete;
  BufferRestore& operator=(const BufferRestore&) = delete;
  ~BufferRestore() {
    torch::NoGradGuard no_grad;
    try {
      for (const auto& [buffer, copy] : saved_) buffer.copy_(copy);
    } catch (...) {
      // Only a failing device gets here, and the error that ends the step says so.
    }
  }

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;
};

// The forward's RNG state installed for the scope, the one it replaced put back after,
// also when the recomputation throws.
class RngSwap {
 public:
  explicit RngSwap(const RngState& state) : replaced_(state.swap_in()) {}
  RngSwap(const RngSwap&) = delete;
  RngSwap& operator=(const RngSwap&) = delete;
  ~RngSwap() {
    try {
      replaced_.swap_in();
    } catch (...) {
      // As above: set_state fails only on a failing device.
    }
  }

 private:
  RngState replaced_;
};

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
  const BufferRestore buffers(*recompute->block);
  variable_list outputs;
  {
    const RngSwap as_forward(recompute->rng);
    const AutocastState::Scope as_first(recompute->autocast);
    torch::AutoGradMode grad_on(true);
    RecomputeTape::Scope replaying(recompute->tape, /*replay=*/true);
    outputs = recompute->run(inputs);
  }

  run_nested_backward(std::move(outputs), std::move(grad_outputs));

  // One slot for the Recompute argument, then the inputs, then the anchor.
  variable_list result(1 + inputs.size() + 1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].requires_grad()) result[1 + i] = inputs[i].grad();
  }
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
