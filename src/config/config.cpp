// Loading, overriding, validating and printing a Config, driven by the schema table.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "config/fields.h"
#include "config/validate.h"

namespace dpunet::config {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key path closest to `path`, comparing like with like (sections with
// sections, keys with keys).
std::string nearest_key(const std::string& path) {
  std::vector<std::string> candidates = path.find('.') == std::string::npos ? sections() : std::vector<std::string>{};
  if (candidates.empty()) {
    for (const Field& f : fields()) candidates.push_back(f.path);
  }
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const std::string& candidate : candidates) {
    // A key in the wrong section ("train.lr" for "optimizer.lr") is a near miss too.
    const std::string leaf = candidate.substr(candidate.find('.') + 1);
    const std::string wanted_leaf = path.substr(path.find('.') + 1);
    const size_t distance = std::min(edit_distance(path, candidate), edit_distance(wanted_leaf, leaf) + 2);
    if (distance < best_distance) best_distance = distance, best = candidate;
  }
  return best;
}

const Field* find_field(const std::string& path) {
  for (const Field& f : fields()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

bool is_section(const std::string& name) {
  const std::vector<std::string> names = sections();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string where(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source;
  return detail::concat(source, ":", mark.line + 1, ":", mark.column + 1);
}

[[noreturn]] void fail_at(const std::string& location, const std::string& key, const std::string& message) {
  throw Error(location + ": " + key + ": " + message);
}

void read_field(const Field& field, Config& config, const YAML::Node& node, const std::string& location) {
  try {
    field.read(config, node);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail_at(location, field.path, e.what());
  }
}

// `unknown`: where keys this build does not know go; null: they are errors.
void read_mapping(const YAML::Node& node, const std::string& prefix, Config& config, const std::string& source,
                  std::vector<std::string>* unknown) {
  if (!node.IsMap()) {
    fail_at(where(source, node.Mark()), prefix.empty() ? "the document" : prefix,
            "expected a mapping of keys (key: value)");
  }
  for (const auto& item : node) {
    const std::string key = item.first.as<std::string>();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const std::string location = where(source, item.first.Mark());
    if (const Field* field = find_field(path)) {
      read_field(*field, config, item.second, where(source, item.second.Mark()));
    } else if (prefix.empty() && is_section(key)) {
      read_mapping(item.second, path, config, source, unknown);
    } else if (unknown != nullptr) {
      unknown->push_back(path);
    } else {
      fail_at(location, path, "unknown key; did you mean '" + nearest_key(path) + "'?");
    }
  }
}

void apply_override(const std::string& text, Config& config) {
  const size_t eq = text.find('=');
  DPUNET_CHECK(eq != std::string::npos && eq > 0, "--set ", text, ": expected KEY=VALUE, e.g. optimizer.lr=3e-4");
  const std::string path = text.substr(0, eq);
  const Field* field = find_field(path);
  if (field == nullptr) fail_at("--set " + text, path, "unknown key; did you mean '" + nearest_key(path) + "'?");
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail_at("--set " + text, path, std::string("not a YAML value: ") + e.msg);
  }
  read_field(*field, config, value, "--set " + text);
}

}  // namespace

namespace {

Config parse(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
             std::vector<std::string>* unknown) {
  Config config;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(where(source, e.mark) + ": not valid YAML: " + e.msg);
  }
  if (!root.IsNull()) read_mapping(root, "", config, source, unknown);
  for (const std::string& text : overrides) apply_override(text, config);
  validate(config, source);
  return config;
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return parse(yaml_text, source, overrides, nullptr);
}

Config parse_saved_config(const std::string& yaml_text, const std::string& source, std::vector<std::string>* skipped) {
  std::vector<std::string> unknown;
  Config config = parse(yaml_text, source, {}, &unknown);
  if (skipped != nullptr) *skipped = std::move(unknown);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  DPUNET_CHECK(in, path, ": cannot read the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::string to_yaml(const Config& config) {
  YAML::Node root(YAML::NodeType::Map);
  for (const Field& f : fields()) {
    const size_t dot = f.path.find('.');
    root[f.path.substr(0, dot)][f.path.substr(dot + 1)] = f.write(config);
  }
  YAML::Emitter out;
  out.SetDoublePrecision(17);  // round trips exactly
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> model_differences(const Config& a, const Config& b) {
  std::vector<std::string> differences;
  for (const Field& f : fields()) {
    // Checkpointing and kernel fusion change how forward and backward run, not the weights.
    if (f.path.rfind("model.", 0) != 0 || f.path == "model.checkpointing" || f.path == "model.fuse_norm_relu" ||
        f.path == "model.pool_concat_kernels") {
      continue;
    }
    YAML::Emitter left, right;
    left << f.write(a);
    right << f.write(b);
    if (std::string(left.c_str()) != right.c_str()) {
      differences.push_back(f.path + ": " + left.c_str() + " vs " + right.c_str());
    }
  }
  return differences;
}

}  // namespace dpunet::config
