// Benchmarks' activation-checkpointing choice: a policy or a block list.
#include "app/checkpoint_selection.h"

#include <sstream>

#include "common/error.h"

namespace dpunet::app {

void select_checkpointed_blocks(model::UnetImpl& net, const std::string& policy, const std::string& blocks,
                                bool recompute_norm) {
  check_checkpoint_selection(policy, blocks, recompute_norm);
  if (blocks.empty()) {
    net.use_checkpointing(true, model::parse_checkpoint_policy(policy));
  } else {
    net.use_checkpointing(false);
    std::stringstream names(blocks);
    for (std::string name; std::getline(names, name, ',');) net.set_checkpointing(name, true);
  }
  net.recompute_norm_outputs(recompute_norm);
}

void check_checkpoint_selection(const std::string& policy, const std::string& blocks, bool recompute_norm) {
  if (!blocks.empty()) return;  // names are checked against the model
  DPUNET_CHECK(model::parse_checkpoint_policy(policy) != model::CheckpointPolicy::kNormRelu || recompute_norm,
               "--policy norm_relu is the norm recompute alone: with --recompute-norm 0 nothing would be checkpointed");
}

std::string checkpoint_selection_label(const std::string& policy, const std::string& blocks) {
  return blocks.empty() ? policy : "blocks " + blocks;
}

}  // namespace dpunet::app
