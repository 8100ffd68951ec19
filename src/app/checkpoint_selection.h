// Which blocks the benchmarks checkpoint: a named policy, or an explicit block list.
#pragma once

#include <string>

#include "model/unet.h"

namespace dpunet::app {

// Checkpoints the comma-separated `blocks` (inc,down1,...,up4,outc) when given, else the
// blocks `policy` (balanced | all | min_memory | norm_relu) selects; and, with
// `recompute_norm`, recomputes every DoubleConv's first BatchNorm+ReLU output
// (Unet::recompute_norm_outputs), as checkpointing in training does. An unknown name or
// policy throws, naming it, and so does norm_relu (that recompute alone) without it.
void select_checkpointed_blocks(model::UnetImpl& net, const std::string& policy, const std::string& blocks,
                                bool recompute_norm);
// The checks select_checkpointed_blocks makes on the policy, without a model: for a
// benchmark to fail before it starts its children.
void check_checkpoint_selection(const std::string& policy, const std::string& blocks, bool recompute_norm);

// How a result row names the selection: the block list when given, else the policy.
std::string checkpoint_selection_label(const std::string& policy, const std::string& blocks);

}  // namespace dpunet::app
