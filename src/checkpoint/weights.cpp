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

}  // namespace

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors state;
  for (const auto& item : module.named_parameters()) state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) state.emplace_back(item.key(), item.value());
  return state;
}

void load_state(torch::nn::Module& module, const NamedTensors& state, const std::string& source) {
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
    DPUNET_FAIL(source, ": the weights do not fit the model (", problems.size(), " differences):", list);
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
