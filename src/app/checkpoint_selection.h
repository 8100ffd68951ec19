// Which blocks the benchmarks checkpoint: a named policy, or an explicit block list, and
// the options that say so on their command lines.
#pragma once

#include <string>
#include <vector>

#include "model/unet.h"

namespace CLI {
class App;
}

namespace dpunet::app {

struct CheckpointSelection {
  std::string policy = "balanced";  // balanced | all | min_memory | norm_relu
  std::string blocks;               // or these, comma-separated (inc,down1,...,up4,outc)
  bool recompute_norm = true;       // also recompute each block's first BatchNorm+ReLU output
  // Whether the decoder's first convolutions take skip and upsampled maps apart
  // (Unet::split_skip_convolutions): "policy" (as it has it: min_memory splits), "1", "0".
  std::string split_skip_conv = "policy";
};

// --policy, --blocks, --recompute-norm and --split-skip-conv, into `selection`.
void add_checkpoint_selection_options(CLI::App& command, CheckpointSelection& selection);

// Checkpoints the blocks `selection` names when given, else those its policy selects;
// with recompute_norm, recomputes every DoubleConv's first BatchNorm+ReLU output
// (Unet::recompute_norm_outputs), as checkpointing in training does; splits the skip
// convolutions as asked. An unknown name or policy throws, naming it, and so does
// norm_relu (that recompute alone) without recompute_norm.
void select_checkpointed_blocks(model::UnetImpl& net, const CheckpointSelection& selection);
// The checks select_checkpointed_blocks makes, without a model: for a benchmark to fail
// before it starts its children.
void check_checkpoint_selection(const CheckpointSelection& selection);

// How a result row names the selection: the block list when given, else the policy.
std::string checkpoint_selection_label(const CheckpointSelection& selection);
// The command-line words that make `selection` again (for a benchmark's child).
std::vector<std::string> checkpoint_selection_arguments(const CheckpointSelection& selection);

}  // namespace dpunet::app
