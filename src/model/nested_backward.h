// A backward pass run from inside another's backward (checkpointing's recomputed blocks,
// norm_relu_conv's recomputed BatchNorm+ReLU map) that lets go of each map as early as
// the outer engine would.
#pragma once

#include <torch/autograd.h>

namespace dpunet::model {

// Backpropagates `grads` through `outputs`, accumulating into the leaves they reach (their
// .grad()). Both lists are consumed: holding either while the engine runs would keep a
// full map (an output, or the gradient arriving at it) alive for the whole nested
// backward; the engine frees each gradient once the node consuming it is done.
void run_nested_backward(torch::autograd::variable_list&& outputs, torch::autograd::variable_list&& grads);

}  // namespace dpunet::model
