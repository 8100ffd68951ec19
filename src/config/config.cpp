// Loading, overriding, validating and printing a Config, driven by the schema table.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "config/fields.h"
#include "config/validate.h"

namespace dpunet::config {
namespace {

// How far the name `wanted` is from `known`: the edit distance, but a name that begins
// the other ("keep" for "keep_last", "every" for "every_steps") is a near miss.
size_t name_distance(const std::string& wanted, const std::string& known) {
  const bool prefix = known.rfind(wanted, 0) == 0 || wanted.rfind(known, 0) == 0;
  return std::min(edit_distance(wanted, known), prefix && !wanted.empty() && !known.empty() ? size_t{1} : SIZE_MAX);
}

// What other trainers call some keys (PyTorch Lightning, Hugging Face, nnU-Net, timm):
// their users write these first.
std::string dpunet_name(const std::string& name) {
  static const std::map<std::string, std::string> names = {
      {"learning_rate", "lr"},
      {"base_lr", "lr"},
      {"initial_lr", "lr"},
      {"max_steps", "steps"},
      {"num_steps", "steps"},
      {"iterations", "steps"},
      {"num_iterations", "steps"},
      {"batch", "batch_size"},
      {"bs", "batch_size"},
      {"num_workers", "workers"},
      {"wd", "weight_decay"},
      {"max_grad_norm", "grad_clip"},
      {"clip_grad_norm", "grad_clip"},
      {"gradient_clip_val", "grad_clip"},
      {"warmup", "warmup_steps"},
      {"accumulate_grad_batches", "accumulation"},
      {"gradient_accumulation_steps", "accumulation"},
      {"in_channels", "n_channels"},
      {"num_classes", "n_classes"},
      {"out_channels", "n_classes"},
      {"crop_size", "patch_size"},
      {"patch", "patch_size"},
      {"epochs", "steps"},
      {"max_epochs", "steps"},
      {"num_epochs", "steps"},
  };
  const auto it = names.find(name);
  return it == names.end() ? name : it->second;
}

// The known key path (or, for a name without a dot, section) closest to `path`, or ""
// when none is near enough to be what was meant. A key is matched by its name within its
// section first; a key in another section ("train.lr" for "optimizer.lr", a misspelt
// "optimiser.lr", or a bare "lr" at the top) costs more the further that section's name
// is from the one given.
std::string nearest_key(const std::string& path) {
  const size_t dot = path.find('.');
  const std::string wanted_section = dot == std::string::npos ? "" : path.substr(0, dot);
  const std::string given_leaf = path.substr(dot == std::string::npos ? 0 : dot + 1);
  const std::string wanted_leaf = dpunet_name(given_leaf);
  std::string best;
  size_t best_distance = SIZE_MAX, best_name_distance = SIZE_MAX;
  auto consider = [&](const std::string& candidate, size_t name_distance, size_t distance) {
    if (distance < best_distance) best_distance = distance, best_name_distance = name_distance, best = candidate;
  };
  if (dot == std::string::npos) {
    for (const std::string& section : sections()) {
      // A section's name cut short ("optim" for optimizer) is one too, from 3 letters on,
      // ranked after a key of that very name elsewhere ("val" is data.val, not validation).
      const size_t d = edit_distance(path, section);
      const bool cut_short = path.size() >= 3 && section.rfind(path, 0) == 0;
      consider(section, cut_short ? std::min<size_t>(d, 1) : d, cut_short ? std::min<size_t>(d, 2) : d);
    }
  }
  for (const Field& f : fields()) {
    const size_t field_dot = f.path.find('.');
    const std::string section = f.path.substr(0, field_dot);
    // A bare name at the top could belong to any section: no section's name to compare.
    const size_t elsewhere = section == wanted_section ? 0
                             : wanted_section.empty()  ? 1
                                                      : 1 + std::min<size_t>(edit_distance(wanted_section, section), 2);
    const size_t d = name_distance(wanted_leaf, f.path.substr(field_dot + 1));
    consider(f.path, d, d + elsewhere);
  }
  // A name that shares little with every key ("foo.bar") is no misspelling of one.
  return best_name_distance <= std::max<size_t>(1, wanted_leaf.size() / 3) ? best : "";
}

// "optimizer.lr" as a file writes it: "'optimizer:' then '  lr: ...'".
std::string in_section(const std::string& path) {
  const size_t dot = path.find('.');
  return "'" + path.substr(0, dot) + ":' then '  " + path.substr(dot + 1) + ": ...'";
}

// The end of an unknown key's message: the key meant, where one is near.
// `at_file_top`: the key sat at a file's top level, where a nearest key of a section is
// shown as the file writes it ("optimizer.lr" there would take a second error).
std::string suggestion_for(const std::string& path, bool at_file_top = false) {
  const std::string nearest = nearest_key(path);
  if (nearest.empty()) return "unknown key (docs/config.md lists every key)";
  // Taken as a number of epochs, train.steps would be a small part of the run meant.
  const bool epochs = path.find("epoch") != std::string::npos && nearest == "train.steps";
  const bool nested = at_file_top && nearest.find('.') != std::string::npos;
  return "unknown key; did you mean " + (nested ? in_section(nearest) : "'" + nearest + "'") + "?" +
         (epochs ? " It counts optimizer steps, not epochs: steps = epochs x samples / (batch_size x ranks x "
                   "accumulation)"
                 : "");
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

void read_field(const Field& field, Config& config, const YAML::Node& node, const std::string& location,
                Origins& origins) {
  origins[field.path] = location;
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
                  std::vector<std::string>* unknown, Origins& origins) {
  // A section whose keys are all commented out is empty, not an error.
  if (node.IsNull() && !prefix.empty()) return;
  if (!node.IsMap()) {
    fail_at(where(source, node.Mark()), prefix.empty() ? "the document" : prefix,
            "expected a mapping of keys (key: value)");
  }
  // yaml-cpp keeps every entry of a key given twice; the later one would win unseen.
  std::map<std::string, YAML::Mark> seen;
  for (const auto& item : node) {
    const std::string location = where(source, item.first.Mark());
    if (!item.first.IsScalar()) {
      fail_at(location, prefix.empty() ? "the document" : prefix,
              "a key must be a plain name, not a list or a mapping");
    }
    const std::string key = item.first.Scalar();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const auto [first, inserted] = seen.emplace(key, item.first.Mark());
    if (!inserted) {
      fail_at(location, path, "given twice (first at " + where(source, first->second) + "); keep one");
    }
    // "optimizer.lr: 0.1" at the top would escape the check above against a nested
    // "optimizer: {lr: ...}" elsewhere in the file: keys sit in their sections.
    if (prefix.empty() && !is_section(key) && find_field(path) != nullptr) {
      fail_at(location, path, "write it inside its section: " + in_section(path));
    }
    if (const Field* field = find_field(path)) {
      // An empty value has no place of its own (yaml-cpp gives the next token's): its key's.
      const YAML::Mark at = item.second.IsNull() ? item.first.Mark() : item.second.Mark();
      read_field(*field, config, item.second, where(source, at), origins);
    } else if (prefix.empty() && is_section(key)) {
      read_mapping(item.second, path, config, source, unknown, origins);
    } else if (unknown != nullptr) {
      unknown->push_back(path);
    } else {
      fail_at(location, path, suggestion_for(path, prefix.empty()));
    }
  }
}

void apply_override(const std::string& text, Config& config, Origins& origins) {
  const size_t eq = text.find('=');
  DPUNET_CHECK(eq != std::string::npos && eq > 0, "--set ", text, ": expected KEY=VALUE, e.g. optimizer.lr=3e-4");
  const std::string path = text.substr(0, eq);
  const Field* field = find_field(path);
  if (field == nullptr && is_section(path)) {
    fail_at("--set " + text, path, "is a section, not a key; set one of its keys (SECTION.KEY=VALUE)");
  }
  if (field == nullptr) fail_at("--set " + text, path, suggestion_for(path));
  // A value is taken as written (a run directory named "exp #2" or "*latest" stays
  // whole); only a list in brackets, and an empty value, null or ~, are read as YAML. A
  // text key takes brackets as written too: a shard pattern such as [tv]rain-*.h5.
  const std::string raw = text.substr(eq + 1);
  YAML::Node value;
  if (raw.empty() || raw == "null" || raw == "~" || (raw.front() == '[' && !field->text)) {
    // Read as a file's value is, after a key: YAML::Load of the value alone would stop
    // after the list and drop what follows it ("[1, 2] 3" would be [1, 2]).
    YAML::Node wrapped;
    try {
      wrapped = YAML::Load("value: " + raw);
    } catch (const YAML::Exception& e) {
      fail_at("--set " + text, path, std::string("not a YAML value: ") + e.msg);
    }
    if (!wrapped.IsMap() || wrapped.size() != 1 || !wrapped["value"]) {
      fail_at("--set " + text, path, "not one YAML value");
    }
    value = wrapped["value"];
  } else {
    value = YAML::Node(raw);
  }
  read_field(*field, config, value, "--set " + text, origins);
}

}  // namespace

namespace {

// What parse checks besides each value as it is read: every check across keys, those
// of a model's description, or none (a saved config's).
enum class Checks { kAcrossKeys, kModelDescription, kEachValueOnly };

// `unknown`: where keys this build does not know go (a saved config's); null: they are
// errors. `settings`, where given: how many keys the file and the overrides set.
Config parse(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
             std::vector<std::string>* unknown, Checks checks, size_t* settings = nullptr) {
  Config config;
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(where(source, e.mark) + ": not valid YAML: " + e.msg);
  }
  // A '---' that ends the file starts an empty document: nothing after it to lose.
  while (documents.size() > 1 && documents.back().IsNull()) documents.pop_back();
  // Only one document would be read; keys after a '---' would be lost unseen.
  if (documents.size() > 1) {
    throw Error(where(source, documents[1].Mark()) +
                ": a second YAML document ('---'); a config is one document, put every key in it");
  }
  const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  Origins origins;
  if (!root.IsNull()) read_mapping(root, "", config, source, unknown, origins);
  for (const std::string& text : overrides) apply_override(text, config, origins);
  if (settings != nullptr) *settings = origins.size() + (unknown != nullptr ? unknown->size() : 0);
  if (checks == Checks::kAcrossKeys) validate(config, source, origins);
  if (checks == Checks::kModelDescription) validate_model_description(config, source, origins);
  return config;
}

std::string read_config_file(const std::string& path) {
  std::error_code ec;
  // A directory opens as an empty stream, which would read as the defaults.
  DPUNET_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a folder; give the config file (a .yaml)");
  const bool there = std::filesystem::exists(path, ec);
  DPUNET_CHECK(!ec, path, ": cannot read the config file: ", ec.message());
  DPUNET_CHECK(there, path, ": no such config file");
  std::ifstream in(path);
  DPUNET_CHECK(in, path, ": cannot read the config file: ", std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  DPUNET_CHECK(!in.bad(), path, ": reading the config file failed");
  return text.str();
}

// A config cut short on its way (an empty copy, or a template whose keys are all
// commented out under their section names) would run on the defaults. With --set, the
// settings are given there.
void require_settings(size_t settings, const std::string& path, const std::string& without) {
  DPUNET_CHECK(settings > 0, path,
               ": the config file holds no settings (it is empty, only comments, or section names whose keys are all "
               "commented out); give the settings, or ",
               without);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  return parse(yaml_text, source, overrides, nullptr, Checks::kAcrossKeys);
}

// A saved config passed the checks of the build that wrote it; today's checks across keys
// (recipes a later build refuses) would make its checkpoint unusable. Each value is still
// checked as it is read (type, range, choices), and what reads the model checks what it
// needs.
Config parse_saved_config(const std::string& yaml_text, const std::string& source, std::vector<std::string>* skipped) {
  std::vector<std::string> unknown;
  Config config = parse(yaml_text, source, {}, &unknown, Checks::kEachValueOnly);
  if (skipped != nullptr) *skipped = std::move(unknown);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  size_t settings = 0;
  Config config = parse(read_config_file(path), path, overrides, nullptr, Checks::kAcrossKeys, &settings);
  require_settings(settings, path, "leave the config out for the quickstart's");
  return config;
}

Config load_model_config(const std::string& path) {
  size_t settings = 0;
  Config config = parse(read_config_file(path), path, {}, nullptr, Checks::kModelDescription, &settings);
  require_settings(settings, path, "describe the model with --n-channels, --n-classes and --bilinear");
  return config;
}

std::string to_yaml(const Config& config) {
  YAML::Emitter out;
  out.SetDoublePrecision(17);  // round trips exactly
  out << YAML::BeginMap;
  for (const std::string& section : sections()) {
    out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    for (const Field& f : fields()) {
      if (f.path.compare(0, section.size() + 1, section + ".") != 0) continue;
      out << YAML::Key << f.path.substr(section.size() + 1) << YAML::Value;
      const YAML::Node value = f.write(config);
      bool flag = false;
      // A name such as "off" would read back as a boolean, which names are not.
      if (f.text && YAML::convert<bool>::decode(value, flag)) {
        out << YAML::DoubleQuoted << value.Scalar();
      } else {
        out << value;
      }
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

std::vector<std::string> differing_keys(const Config& a, const Config& b, bool (*compared)(const std::string& path)) {
  std::vector<std::string> found;
  for (const Field& f : fields()) {
    if (!compared(f.path)) continue;
    YAML::Emitter left, right;
    left << f.write(a);
    right << f.write(b);
    if (std::string(left.c_str()) != right.c_str())
      found.push_back(f.path + ": " + left.c_str() + " vs " + right.c_str());
  }
  return found;
}

}  // namespace

std::vector<std::string> model_differences(const Config& a, const Config& b) {
  // A run may move between BatchNorm and SyncBatchNorm when it resumes on more or fewer GPUs.
  Config left = a, right = b;
  for (Config* c : {&left, &right}) c->model.norm = weights_norm(c->model.norm);
  return differing_keys(left, right, [](const std::string& path) {
    // Checkpointing, split convolutions and kernel fusion change how forward and backward
    // run, not the weights.
    return path.rfind("model.", 0) == 0 && path != "model.checkpointing" && path != "model.split_skip_conv" &&
           path != "model.fuse_norm_relu" && path != "model.pool_concat_kernels";
  });
}

std::vector<std::string> differences(const Config& a, const Config& b) {
  return differing_keys(a, b, [](const std::string&) { return true; });
}

std::vector<std::string> key_values(const Config& config) {
  std::vector<std::string> lines;
  for (const Field& field : fields()) {
    YAML::Emitter value;
    value << YAML::Flow << field.write(config);
    lines.push_back(field.path + ": " + value.c_str());
  }
  return lines;
}

}  // namespace dpunet::config
