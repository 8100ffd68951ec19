#include "model/nested_backward.h"

#include <torch/csrc/autograd/engine.h>
#include <torch/torch.h>

namespace dpunet::model {
namespace {

using torch::autograd::variable_list;

// The root of a nested backward: hands its gradients over on first use and keeps no
// reference to them.
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

}  // namespace

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

}  // namespace dpunet::model
