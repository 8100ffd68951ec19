#include "app/checkpoint_selection.h"

#include <sstream>

namespace dpunet::app {

void select_checkpointed_blocks(model::UnetImpl& net, const std::string& policy, const std::string& blocks,
                                bool recompute_norm) {
  if (blocks.empty()) {
    net.use_checkpointing(true, model::parse_checkpoint_policy(policy));
  } else {
    net.use_checkpointing(false);
    std::stringstream names(blocks);
    for (std::string name; std::getline(names, name, ',');) net.set_checkpointing(name, true);
  }
  net.recompute_norm_outputs(recompute_norm);
}

std::string checkpoint_selection_label(const std::string& policy, const std::string& blocks) {
  return blocks.empty() ? policy : "blocks " + blocks;
}

}  // namespace dpunet::app
