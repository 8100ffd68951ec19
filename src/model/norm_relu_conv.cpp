// norm_relu_conv: an autograd function around batch_norm_relu and the convolution that
// saves the BatchNorm input and statistics instead of the convolution's input.
#include "model/norm_relu_conv.h"

#include <optional>

#include <torch/torch.h>

#include "common/error.h"
#include "model/autocast_state.h"
#include "model/batch_norm_relu.h"
#include "model/nested_backward.h"

namespace dpunet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What backward needs besides the saved tensors.
struct Replay : torch::CustomClassHolder {
  double eps = 0;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  AutocastState autocast;  // forward's, so the recomputed map is cast as it was
};

class NormReluConvFunction : public torch::autograd::Function<NormReluConvFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& norm_weight,
                               const torch::Tensor& norm_bias, const torch::Tensor& conv_weight,
                               const std::optional<torch::Tensor>& conv_bias, torch::nn::BatchNorm2dImpl* bn,
                               torch::nn::Conv2dImpl* conv, bool allow_fused) {
    std::vector<torch::Tensor> statistics;
    torch::Tensor y = batch_norm_relu(x, *bn, allow_fused, &statistics);
    torch::Tensor z = conv->forward(y);
    y.reset();  // the point of this function: the map is not kept

    auto replay = c10::make_intrusive<Replay>();
    replay->eps = bn->options.eps();
    const auto& o = conv->options;
    auto as_vector = [](const torch::ExpandingArray<2>& a) { return std::vector<int64_t>(a->begin(), a->end()); };
    replay->stride = as_vector(o.stride());
    replay->padding = as_vector(std::get<torch::ExpandingArray<2>>(o.padding()));
    replay->dilation = as_vector(o.dilation());
    replay->groups = o.groups();
    replay->autocast = AutocastState::capture();
    std::vector<torch::Tensor> saved{x, norm_weight, norm_bias, conv_weight, conv_bias.value_or(torch::Tensor())};
    saved.insert(saved.end(), statistics.begin(), statistics.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["replay"] = c10::IValue::make_capsule(replay);
    ctx->saved_data["conv_type"] = static_cast<int64_t>(z.scalar_type());
    return z;
  }

  // grad_outputs by reference: the autograd engine's own list (LibTorch passes it as an
  // lvalue), so that dropping the output's gradient below frees it.
  static variable_list backward(AutogradContext* ctx, variable_list& grad_outputs) {
    // The gradients below come from detached tensors: a graph of them would be wrong.
    DPUNET_CHECK(!torch::GradMode::is_enabled(),
                 "norm_relu_conv (checkpointing's BatchNorm+ReLU recomputation) has no double backward; "
                 "turn checkpointing off to differentiate twice");
    const auto replay = c10::static_intrusive_pointer_cast<Replay>(ctx->saved_data["replay"].toCapsule());
    const auto conv_type = static_cast<torch::ScalarType>(ctx->saved_data["conv_type"].toInt());
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& conv_weight = saved[3];
    const torch::Tensor& conv_bias = saved[4];
    const std::vector<torch::Tensor> statistics(saved.begin() + 5, saved.end());
    const bool norm_needed = ctx->needs_input_grad(0) || ctx->needs_input_grad(1) || ctx->needs_input_grad(2);

    // The map again, as a small graph of its own to backpropagate the map's gradient into.
    variable_list norm_inputs;
    for (size_t i = 0; i < 3; ++i) norm_inputs.push_back(saved[i].detach().requires_grad_(norm_needed));
    torch::Tensor y;
    {
      const AutocastState::Scope as_forward(replay->autocast);
      torch::AutoGradMode grad_on(norm_needed);
      y = batch_norm_relu_replay(norm_inputs[0], norm_inputs[1], norm_inputs[2], replay->eps, statistics);
    }

    // The convolution's backward, as autograd runs it for conv(y) (under autocast the
    // convolution ran in conv_type, with its weight and bias cast to it).
    torch::Tensor dy, dweight, dbias;
    {
      const torch::Tensor y_in = y.detach().to(conv_type);
      const torch::Tensor weight_in = conv_weight.to(conv_type);
      const bool has_bias = conv_bias.defined();
      const auto bias_sizes = has_bias ? c10::optional<at::IntArrayRef>(conv_bias.sizes()) : c10::nullopt;
      std::tie(dy, dweight, dbias) = at::convolution_backward(
          grad_outputs[0].to(conv_type), y_in, weight_in, bias_sizes, replay->stride, replay->padding, replay->dilation,
          /*transposed=*/false, /*output_padding=*/{0, 0}, replay->groups,
          {norm_needed, ctx->needs_input_grad(3), has_bias && ctx->needs_input_grad(4)});
      if (dweight.defined()) dweight = dweight.to(conv_weight.scalar_type());
      if (dbias.defined()) dbias = dbias.to(conv_bias.scalar_type());
    }
    // The convolution's output gradient, a map of its own, is used up: freed before the
    // BatchNorm+ReLU backward allocates its maps (the peak of a checkpointed U-Net's step
    // lies there). So are the recomputed map and its gradient, handed to the nested
    // backward, which frees each as soon as the node using it is done (ReLU's own saved
    // result holds the map while it is needed).
    grad_outputs[0].reset();
    variable_list norm_grads(3);
    if (norm_needed) {
      // Moved into lists of their own: a braced list would copy them out of an
      // initializer_list, whose array holds both until the call returns.
      variable_list outputs, grads;
      outputs.push_back(std::move(y));
      grads.push_back(dy.to(outputs[0].scalar_type()));
      dy.reset();
      run_nested_backward(std::move(outputs), std::move(grads));
      for (size_t i = 0; i < 3; ++i) norm_grads[i] = norm_inputs[i].grad();
    }
    return {norm_grads[0], norm_grads[1],   norm_grads[2],   dweight,
            dbias,         torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

bool plain_zero_padded(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return !o.transposed() && std::holds_alternative<torch::ExpandingArray<2>>(o.padding()) &&
         std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
}

}  // namespace

torch::Tensor norm_relu_conv(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, torch::nn::Conv2dImpl& conv,
                             bool allow_fused) {
  const bool saves = torch::GradMode::is_enabled() && bn.is_training() && bn.options.affine() &&
                     bn.options.track_running_stats() && plain_zero_padded(conv);
  if (!saves) return conv.forward(batch_norm_relu(x, bn, allow_fused));
  // An undefined tensor cannot be an autograd function's input: no bias is nullopt.
  const std::optional<torch::Tensor> bias =
      conv.bias.defined() ? std::optional<torch::Tensor>(conv.bias) : std::nullopt;
  return NormReluConvFunction::apply(x, bn.weight, bn.bias, conv.weight, bias, &bn, &conv, allow_fused);
}

}  // namespace dpunet::model
