// `dpunet export CHECKPOINT --format safetensors OUT`: the model's parameters and
// buffers with the PyTorch reference's state_dict names, so that
// UNet(...).load_state_dict(safetensors.torch.load_file(OUT)) works unchanged. The
// resolved config rides along in the file's metadata for dpunet's own use.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include "app/cli_checks.h"
#include "app/commands.h"
#include "app/model_source.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/weights.h"
#include "common/error.h"
#include "common/text.h"
#include "data/normalize.h"

namespace dpunet::app {
namespace {

// How the model's inputs are scaled, in words a PyTorch user can follow.
std::string input_scaling(const config::DataConfig& data) {
  if (data.normalization == "per_image") return "each image standardised alone, (v - its mean) / its std per channel";
  if (data.normalization == "none") return "pixel values / 255 for 8-bit images, / 65535 for 16-bit, float as stored";
  std::ostringstream text;
  text << "(v - mean) / std per channel, in stored pixel units, mean [";
  for (size_t c = 0; c < data.channel_mean.size(); ++c) text << (c ? ", " : "") << data.channel_mean[c];
  text << "], std [";
  for (size_t c = 0; c < data.channel_std.size(); ++c) text << (c ? ", " : "") << data.channel_std[c];
  text << "]";
  // data::dataset_affine: a constant channel is centred, not divided by its zero spread.
  if (std::any_of(data.channel_std.begin(), data.channel_std.end(),
                  [](double s) { return s < data::kConstantChannelStd; })) {
    text << "; a channel whose std is below " << data::kConstantChannelStd << " is only centred, (v - mean)";
  }
  return text.str();
}

}  // namespace

void add_export_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, format = "safetensors", out;
    bool overwrite = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint's weights for PyTorch (safetensors)");
  cmd->add_option(
         "checkpoint", args->checkpoint,
         "Training checkpoint (.ckpt), a run directory (its best, else newest) or its best/latest pointer file")
      ->required()
      ->check(not_empty());
  cmd->add_option("out", args->out, "Output file (*.safetensors)")->required()->check(not_empty());
  cmd->add_option("--format", args->format, "Output format (safetensors)")->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "Replace OUT if it exists");
  cmd->callback([args] {
    DPUNET_CHECK(args->format == "safetensors", "export: unknown format '", args->format, "' (safetensors)");
    // The name says what the file holds, and keeps export from replacing a run's
    // config.yaml, a checkpoint pointer or a PyTorch .pt by a slip of the argument.
    DPUNET_CHECK(lower_extension(args->out) == ".safetensors", "export: ", args->out,
                 ": name the output file *.safetensors");
    // As predict, synth and import: a file already there is kept unless asked, so that
    // exporting a second run under the first's name does not lose the first's weights.
    DPUNET_CHECK(args->overwrite || !std::filesystem::exists(args->out), "export: ", args->out,
                 " already exists; choose another name, or pass --overwrite to replace it");
    ModelSource source;
    source.checkpoint = args->checkpoint;
    const config::Config config = source.resolve();
    if (!source.chosen().empty()) std::cerr << "export: " << source.chosen() << "\n";
    std::error_code ec;
    DPUNET_CHECK(!std::filesystem::equivalent(source.checkpoint_file(), args->out, ec), "export: ", args->out,
                 " is the checkpoint itself; writing there would replace it");
    const model::Unet net = source.load(config);
    checkpoint::write_safetensors(args->out, checkpoint::module_state(*net),
                                  {{"format", "pt"}, {kConfigMetadataKey, config::to_yaml(config)}});
    std::cout << args->out << "\n";
    // The weights expect their inputs scaled as in training: said, for the PyTorch user
    // who would otherwise feed img / 255 and get wrong masks without an error.
    std::cerr << "export: inputs: " << input_scaling(config.data) << " (also in the file's " << kConfigMetadataKey
              << " metadata)\n";
    // The reference UNet(n_channels, n_classes, bilinear) has these; anything else loads
    // into dpunet (the config travels in the metadata) but not into that class.
    const auto& m = config.model;
    if (m.base_channels != 64 || m.depth != 4 || (m.norm != "batch" && m.norm != "sync_batch") || m.padding != "same") {
      std::cerr << "export: note: not the PyTorch reference U-Net (base_channels " << m.base_channels << ", depth "
                << m.depth << ", norm " << m.norm << ", padding " << m.padding
                << "; the reference has 64, 4, batch, same): the file loads into dpunet, and into a PyTorch model "
                   "only if it is built alike\n";
    }
  });
}

}  // namespace dpunet::app
