// The config schema: one entry per key, with how to read it from YAML (type and range
// checks), how to write it back, and how to show it. load_config, to_yaml, the unknown-
// key suggestions and the model-compatibility check are all driven by this one table.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "config/config.h"

namespace dpunet::config {

struct Field {
  std::string path;  // "optimizer.lr"
  // Reads `node` into the config; throws a message without location ("expected ...").
  std::function<void(Config&, const YAML::Node&)> read;
  // The current value as a YAML node.
  std::function<YAML::Node(const Config&)> write;
  // A string: printed quoted where it would read back as a boolean ("off").
  bool text = false;
};

const std::vector<Field>& fields();
// The section names ("optimizer", ...) in schema order.
std::vector<std::string> sections();

}  // namespace dpunet::config
