// Benchmarks' activation-checkpointing choice: a policy or a block list.
#include "app/checkpoint_selection.h"

#include <sstream>

#include <CLI/CLI.hpp>

#include "common/error.h"

namespace dpunet::app {

void add_checkpoint_selection_options(CLI::App& command, CheckpointSelection& selection) {
  command.add_option("--policy", selection.policy, "Checkpointing policy: norm_relu, balanced, min_memory or all")
      ->capture_default_str();
  command.add_option("--blocks", selection.blocks,
                     "Blocks to checkpoint, comma-separated (inc,down1,...,up4,outc); overrides --policy");
  command
      .add_option("--recompute-norm", selection.recompute_norm,
                  "With checkpointing, also recompute each block's first BatchNorm+ReLU output")
      ->capture_default_str();
  command
      .add_option("--split-skip-conv", selection.split_skip_conv,
                  "With checkpointing, the decoder's first convolutions take the skip and upsampled maps apart "
                  "instead of concatenated: policy (min_memory does), 1 or 0")
      ->capture_default_str()
      ->check(CLI::IsMember({"policy", "1", "0"}));
}

void select_checkpointed_blocks(model::UnetImpl& net, const CheckpointSelection& selection) {
  check_checkpoint_selection(selection);
  if (selection.blocks.empty()) {
    net.use_checkpointing(true, model::parse_checkpoint_policy(selection.policy));
  } else {
    net.use_checkpointing(false);
    std::stringstream names(selection.blocks);
    for (std::string name; std::getline(names, name, ',');) net.set_checkpointing(name, true);
  }
  net.recompute_norm_outputs(selection.recompute_norm);
  if (selection.split_skip_conv != "policy") net.split_skip_convolutions(selection.split_skip_conv == "1");
}

void check_checkpoint_selection(const CheckpointSelection& selection) {
  DPUNET_CHECK(
      selection.split_skip_conv == "policy" || selection.split_skip_conv == "1" || selection.split_skip_conv == "0",
      "--split-skip-conv must be policy, 1 or 0, got '", selection.split_skip_conv, "'");
  if (!selection.blocks.empty()) return;  // names are checked against the model
  DPUNET_CHECK(model::parse_checkpoint_policy(selection.policy) != model::CheckpointPolicy::kNormRelu ||
                   selection.recompute_norm,
               "--policy norm_relu is the norm recompute alone: with --recompute-norm 0 nothing would be checkpointed");
}

std::string checkpoint_selection_label(const CheckpointSelection& selection) {
  return selection.blocks.empty() ? selection.policy : "blocks " + selection.blocks;
}

std::vector<std::string> checkpoint_selection_arguments(const CheckpointSelection& selection) {
  std::vector<std::string> words{"--policy", selection.policy};
  if (!selection.blocks.empty()) words.insert(words.end(), {"--blocks", selection.blocks});
  words.insert(words.end(), {"--recompute-norm", selection.recompute_norm ? "1" : "0", "--split-skip-conv",
                             selection.split_skip_conv});
  return words;
}

}  // namespace dpunet::app
