// module_state / load_state.
#include "checkpoint/weights.h"

#include <torch/torch.h>

#include <map>
#include <sstream>

#include "common/error.h"

namespace dpunet::checkpoint {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// The U-Net a state describes, from the reference's names: "3 input channel(s), 2
// classes, base_channels 8, depth 3"; "" for a state of another model.
std::string unet_shape(const NamedTensors& state) {
  int64_t channels = -1, width = -1, classes = -1, depth = 0;
  for (const auto& [name, tensor] : state) {
    if (name == "inc.double_conv.0.weight" && tensor.dim() == 4) channels = tensor.size(1), width = tensor.size(0);
    if (name == "outc.conv.weight" && tensor.dim() == 4) classes = tensor.size(0);
    // down1.maxpool_conv.1.double_conv.0.weight, ...: one per level.
    if (name.rfind("down", 0) == 0 && name.find(".double_conv.0.weight") != std::string::npos) ++depth;
  }
  if (channels < 0 || classes < 0) return "";
  return std::to_string(channels) + " input channel(s), " + std::to_string(classes) + " classes, base_channels " +
         std::to_string(width) + ", depth " + std::to_string(depth);
}

}  // namespace

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors state;
  for (const auto& item : module.named_parameters()) state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) state.emplace_back(item.key(), item.value());
  return state;
}

void load_state(torch::nn::Module& module, const NamedTensors& state, const std::string& source,
                const std::string& hint) {
  std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  std::vector<std::string> problems;
  const NamedTensors targets = module_state(module);
  for (const auto& [name, target] : targets) {
    const auto found = given.find(name);
    // PyTorch's BatchNorm loads a state without its step count (older files, other tools)
    // as a count of 0, and so does this (only a BatchNorm without momentum would read it).
    const std::string count_name = "num_batches_tracked";
    const bool step_count = name.size() >= count_name.size() &&
                            name.compare(name.size() - count_name.size(), count_name.size(), count_name) == 0 &&
                            (name.size() == count_name.size() || name[name.size() - count_name.size() - 1] == '.');
    if (found == given.end() && step_count) continue;
    if (found == given.end()) {
      problems.push_back("missing " + name + " " + shape_text(target));
    } else if (c10::isFloatingType(found->second.scalar_type()) && !torch::isfinite(found->second).all().item<bool>()) {
      // A NaN or infinite weight makes every prediction NaN (and every mask class 0).
      problems.push_back(name + ": holds NaN or infinite values");
    } else if (found->second.sizes() != target.sizes()) {
      problems.push_back(name + ": file " + shape_text(found->second) + ", model " + shape_text(target));
    } else if (c10::isFloatingType(found->second.scalar_type()) != c10::isFloatingType(target.scalar_type())) {
      // Precisions convert (bf16 or float64 weights into float32); integers and floats
      // do not: their bytes would be read as something else.
      problems.push_back(name + ": file " + c10::toString(found->second.scalar_type()) + ", model " +
                         c10::toString(target.scalar_type()));
    } else if (c10::isFloatingType(target.scalar_type()) &&
               !torch::isfinite(found->second.to(target.scalar_type())).all().item<bool>()) {
      // Finite float64 weights beyond float32's range would be infinite once converted.
      problems.push_back(name + ": holds values beyond " + c10::toString(target.scalar_type()) +
                         "'s range (largest magnitude " + c10::str(found->second.abs().max().item<double>()) + ")");
    }
  }
  for (const auto& [name, tensor] : state) {
    const bool known = std::any_of(targets.begin(), targets.end(), [&](const auto& t) { return t.first == name; });
    if (!known) problems.push_back("unexpected " + name + " " + shape_text(tensor));
  }
  if (!problems.empty()) {
    std::string list;
    const size_t shown = std::min<size_t>(problems.size(), 12);
    for (size_t i = 0; i < shown; ++i) list += "\n  " + problems[i];
    if (problems.size() > shown) list += "\n  ... and " + std::to_string(problems.size() - shown) + " more";
    // Most often the file is of another model altogether: said first, in the config's terms.
    const std::string file_model = unet_shape(state), built = unet_shape(targets);
    std::string models;
    if (!file_model.empty() && !built.empty() && file_model != built) {
      models = " The file holds a U-Net of " + file_model + "; the model built has " + built + ".";
    }
    DPUNET_FAIL(source, ": the weights do not fit the model (", problems.size(),
                problems.size() == 1 ? " difference)." : " differences).", models, hint.empty() ? "" : " " + hint,
                list);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    const auto found = given.find(name);
    if (found != given.end()) {
      target.copy_(found->second);
    } else {
      target.zero_();  // a missing step count (above)
    }
  }
}

}  // namespace dpunet::checkpoint
