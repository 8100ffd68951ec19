// ModelSource.
#include "app/model_source.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "app/cli_checks.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "checkpoint/weights.h"
#include "common/error.h"
#include "train/setup.h"

namespace dpunet::app {
void ModelArguments::add_options(CLI::App& command) {
  CLI::Option* from_checkpoint =
      command
          .add_option(
              "--checkpoint", checkpoints,
              "A training checkpoint (.ckpt), a run directory (its best, else newest) or its best/latest pointer file; "
              "several: an ensemble")
          ->check(not_empty());
  command.add_option("--weights", weights, "A safetensors file (from dpunet export or PyTorch); several: an ensemble")
      ->check(not_empty());
  // A checkpoint carries the config it was trained under; a second description of the
  // model beside it would be ignored or contradict it, so it is refused.
  for (CLI::Option* describes_weights :
       {command.add_option("--config", config, "YAML whose model section describes the weights")->check(not_empty()),
        command.add_option("--n-channels", n_channels, "Model input channels (for weights without a config)"),
        command.add_option("--n-classes", n_classes, "Model classes (for weights without a config)"),
        command.add_flag("--bilinear", bilinear, "The model up-samples bilinearly")}) {
    describes_weights->excludes(from_checkpoint);
  }
}

std::vector<ModelSource> ModelArguments::sources() const {
  DPUNET_CHECK(checkpoints.empty() != weights.empty(),
               "give --checkpoint (one or more) or --weights (one or more), not both and not neither");
  std::vector<ModelSource> models;
  for (const std::string& file : checkpoints) {
    ModelSource m;
    m.checkpoint = file;
    models.push_back(m);
  }
  for (const std::string& file : weights) {
    ModelSource m;
    m.weights = file;
    m.config = config;
    m.n_channels = n_channels;
    m.n_classes = n_classes;
    m.bilinear = bilinear;
    models.push_back(m);
  }
  return models;
}

config::Config ModelSource::resolve() const {
  DPUNET_CHECK(checkpoint.empty() != weights.empty(), "give exactly one of --checkpoint and --weights");
  config::Config c;
  if (!checkpoint.empty()) {
    c = config::parse_saved_config(loaded_checkpoint().state().config_yaml, checkpoint_file_ + " (saved config)");
  } else if (std::error_code ec; std::filesystem::is_directory(weights, ec)) {
    DPUNET_FAIL("--weights ", weights, " is a folder: give a .safetensors file, or a run directory with --checkpoint");
  } else if (checkpoint::has_checkpoint_magic(weights)) {
    DPUNET_FAIL(weights, " is a dpunet training checkpoint, not safetensors weights: give it with --checkpoint");
  } else if (!config.empty()) {
    c = config::load_model_config(config);
  } else {
    const auto metadata = checkpoint::read_safetensors_metadata(weights);
    const auto saved = metadata.find(kConfigMetadataKey);
    if (saved != metadata.end()) {
      c = config::parse_saved_config(saved->second, weights + " (saved config)");
    } else {
      // Weights from PyTorch: the reference scales 8-bit images to [0, 1] and knows no
      // dataset statistics, so neither does their default here (--normalization changes it).
      c.data.normalization = "none";
    }
  }
  // The config's own ranges: one class would be a sigmoid model, whose single channel
  // softmax turns into background everywhere; argmax masks are stored as bytes.
  DPUNET_CHECK(!n_channels || (*n_channels >= 1 && *n_channels <= 4096), "--n-channels must be in [1, 4096], got ",
               n_channels.value_or(0));
  DPUNET_CHECK(!n_classes || (*n_classes >= 2 && *n_classes <= 256), "--n-classes must be in [2, 256], got ",
               n_classes.value_or(0),
               n_classes.value_or(0) == 1 ? " (classes include the background: a model with one sigmoid output "
                                            "is not supported)"
                                          : "");
  if (n_channels) c.model.n_channels = *n_channels;
  if (n_classes) c.model.n_classes = *n_classes;
  if (bilinear) c.model.bilinear = true;
  return c;
}

const checkpoint::LoadedCheckpoint& ModelSource::loaded_checkpoint() const {
  if (!loaded_) {
    if (checkpoint_file_.empty()) {
      std::string chosen;
      checkpoint_file_ = checkpoint::resolve_checkpoint_argument(checkpoint, &chosen);
      chosen_ = checkpoint_file_ == checkpoint ? "" : chosen;
    }
    loaded_ = std::make_shared<const checkpoint::LoadedCheckpoint>(checkpoint_file_);
  }
  return *loaded_;
}

std::string ModelSource::identity() const {
  uLong crc = 0;
  if (checkpoint.empty()) {
    // Two exports of one architecture have one size: the bytes tell them apart. Read in
    // pieces; the file was just read whole, so from the page cache as a rule.
    std::ifstream in(weights, std::ios::binary);
    DPUNET_CHECK(in, weights, ": cannot open (", std::strerror(errno), ")");
    crc = crc32(0L, Z_NULL, 0);
    std::vector<char> piece(size_t{1} << 20);
    while (in.read(piece.data(), static_cast<std::streamsize>(piece.size())) || in.gcount() > 0) {
      crc = crc32(crc, reinterpret_cast<const Bytef*>(piece.data()), static_cast<uInt>(in.gcount()));
    }
    // An I/O error ends the loop as the end of the file does: a partial CRC would tell
    // the ranks apart without a cause.
    DPUNET_CHECK(!in.bad(), weights, ": cannot read (", std::strerror(errno), ")");
  } else {
    crc = loaded_checkpoint().crc();
  }
  char text[32];
  std::snprintf(text, sizeof(text), " (CRC-32 %08x)", static_cast<unsigned>(crc));
  return std::filesystem::path(checkpoint.empty() ? weights : checkpoint_file()).filename().string() + text;
}

model::Unet ModelSource::load(const config::Config& c) const {
  // SyncBatchNorm differs from BatchNorm only in training (statistics over every rank's
  // batch); for inference both normalise with the running statistics, stored under the
  // same names, and BatchNorm needs no communicator.
  config::Config inference = c;
  inference.model.norm = config::weights_norm(inference.model.norm);
  // Inference keeps nothing for a backward: checkpointing and split skip convolutions would
  // save no memory, and the split would change the last bits against the model that
  // concatenates, so a min_memory run predicts as any other does.
  inference.model.checkpointing = "none";
  inference.model.split_skip_conv = "false";
  model::Unet net = train::build_model(inference, nullptr);
  if (!checkpoint.empty()) {
    loaded_checkpoint().restore_model(*net);
    loaded_.reset();  // the archive holds the optimizer's moments too: not for the rest of the run
  } else {
    checkpoint::load_state(*net, checkpoint::read_safetensors(weights), weights,
                           "Give the model the weights are of: --config with the config of the run that made them, "
                           "or --n-channels, --n-classes and --bilinear for the reference U-Net's.");
  }
  return net;
}

}  // namespace dpunet::app
