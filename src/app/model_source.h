// Where `dpunet predict` and `dpunet export` get a model: a training checkpoint (its
// saved config builds the model) or a safetensors file (the model config comes from
// --config, or from the file's metadata when dpunet wrote it, or the reference
// defaults), with --n-channels/--n-classes/--bilinear to describe a PyTorch model.
// `predict` takes several of either kind as an ensemble (cross-validation folds).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "model/unet.h"

namespace dpunet::app {

// One model.
struct ModelSource {
  // A .ckpt, a best/latest pointer or a run directory (checkpoint::resolve_checkpoint_argument).
  std::string checkpoint;
  std::string weights;  // .safetensors
  std::string config;   // YAML for the model section
  std::optional<int64_t> n_channels, n_classes;
  bool bilinear = false;

  // The file named on the command line, for messages.
  const std::string& argument() const { return checkpoint.empty() ? weights : checkpoint; }
  // The config the model is built from (model section resolved as described above).
  config::Config resolve() const;
  // After resolve(): which checkpoint file a folder or pointer named, for the console;
  // empty when a file was given.
  const std::string& chosen() const { return chosen_; }
  // After resolve(): the checkpoint file read.
  const std::string& checkpoint_file() const { return checkpoint_file_; }
  // After resolve(): what tells this model file from another between ranks, whose
  // readings of a run's best pointer may differ while it trains on: the file's name and
  // CRC-32 (a checkpoint's own, a weights file's computed here).
  std::string identity() const;
  // Builds the model and loads the weights; errors list mismatched names and shapes.
  model::Unet load(const config::Config& config) const;

 private:
  // The checkpoint, read (and verified) once for resolve() and load().
  const checkpoint::LoadedCheckpoint& loaded_checkpoint() const;
  mutable std::shared_ptr<const checkpoint::LoadedCheckpoint> loaded_;
  mutable std::string checkpoint_file_, chosen_;
};

// The models named on a command line: one or more --checkpoint, or one or more --weights
// sharing one description (--config, --n-channels, ...).
struct ModelArguments {
  std::vector<std::string> checkpoints, weights;
  std::string config;
  std::optional<int64_t> n_channels, n_classes;
  bool bilinear = false;

  void add_options(CLI::App& command);
  // One ModelSource per file, in the order given.
  std::vector<ModelSource> sources() const;
};

// The metadata key under which dpunet stores the resolved config in safetensors files.
inline constexpr const char* kConfigMetadataKey = "dpunet_config";

}  // namespace dpunet::app
