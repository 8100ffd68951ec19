// `dpunet predict INPUT --out DIR (--checkpoint C | --weights W)`: overlap-tile
// segmentation of shards or image files, on CPU or GPU, by one process or by every rank
// of an mpirun job (each takes every W-th image). --eval reports Dice and IoU per class
// where masks are known, pooled over all images of all ranks and per image.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "app/commands.h"
#include "app/model_source.h"
#include "common/atomic_file.h"
#include "common/autocast_scope.h"
#include "common/error.h"
#include "common/exception_message.h"
#include "common/text.h"
#include "data/import.h"
#include "dist/context.h"
#include "dist/make_communicator.h"
#include "dist/mpi_check.h"
#include "infer/evaluation.h"
#include "infer/inputs.h"
#include "infer/outputs.h"
#include "infer/sliding_window.h"
#include "model/unet_options.h"
#include "train/setup.h"

namespace dpunet::app {
namespace {

struct PredictArgs {
  std::string input, masks, mask_suffix, mask_map, out, normalization, device = "auto";
  ModelSource source;
  int64_t tile = 0;
  double overlap = 0.5;
  int64_t batch = 4;
  bool tta = false, probabilities = false, no_png = false, eval = false, fp32 = false, overwrite = false;
};

dist::DevicePreference preference(const std::string& device) {
  if (device == "cpu") return dist::DevicePreference::kCpu;
  if (device == "cuda") return dist::DevicePreference::kCuda;
  DPUNET_CHECK(device == "auto", "--device must be auto, cpu or cuda, got '", device, "'");
  return dist::DevicePreference::kAuto;
}

infer::TileOptions tile_options(const PredictArgs& args, const config::Config& config) {
  const model::UnetOptions unet = train::unet_options(config, nullptr);
  infer::TileOptions o;
  o.input_tile = args.tile > 0 ? args.tile : (config.augment.patch_size > 0 ? config.augment.patch_size : 256);
  o.output_tile = model::output_size_or_fail(unet, o.input_tile, "--tile " + std::to_string(o.input_tile));
  DPUNET_CHECK(args.overlap >= 0 && args.overlap < 1, "--overlap must be in [0, 1), got ", args.overlap);
  DPUNET_CHECK(args.batch >= 1, "--batch must be at least 1, got ", args.batch);
  o.overlap = args.overlap;
  o.batch = args.batch;
  o.flip_tta = args.tta;
  return o;
}

// eval.json holds every image's scores; the console gets the summaries.
void report(const infer::EvaluationTable& table, const infer::InputSet& inputs, const std::string& path) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < inputs.size(); ++i) names.push_back(inputs.name(i));
  nlohmann::json result = table.report(names);
  write_file_atomically(path, result.dump(2) + "\n");
  result.erase("per_image");
  std::printf("eval: %s\n", result.dump().c_str());
}

// The folder `input` (a folder, a file or a glob) names its files in.
std::filesystem::path input_folder(const std::string& input) {
  std::error_code ec;
  if (std::filesystem::is_directory(input, ec)) return input;
  const std::filesystem::path parent = std::filesystem::path(input).parent_path();
  return parent.empty() ? "." : parent;
}

// Predictions (NAME_mask.png, NAME_overlay.png, predictions.h5) written among the inputs
// could replace a ground-truth mask named the same way, and become inputs of the next run.
void check_out_folder(const PredictArgs& args) {
  std::error_code ec;
  for (const std::filesystem::path& folder : {input_folder(args.input), std::filesystem::path(args.masks)}) {
    if (folder.empty()) continue;
    DPUNET_CHECK(!std::filesystem::equivalent(args.out, folder, ec), "predict: --out ", args.out,
                 " is the folder of the inputs or masks (", folder.string(),
                 "); predictions written there could replace masks and be read as inputs next time: choose another "
                 "folder");
  }
}

// What an earlier predict left in `out`: its files would mix with this run's (stale
// masks of other images, an eval.json of another set, one predictions.h5 beside
// per-rank ones), so they are refused, or removed with --overwrite.
std::vector<std::string> earlier_predictions(const std::string& out) {
  std::vector<std::string> found;
  std::error_code ec;
  if (!std::filesystem::is_directory(out, ec)) return found;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "predictions.h5" || name == "eval.json" ||
        (name.rfind("predictions-rank", 0) == 0 && ends_with(name, ".h5")) || ends_with(name, "_mask.png") ||
        ends_with(name, "_overlay.png")) {
      found.push_back(entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

void run(const PredictArgs& args) {
  check_out_folder(args);
  const std::vector<std::string> earlier = earlier_predictions(args.out);
  DPUNET_CHECK(earlier.empty() || args.overwrite, "predict: --out ", args.out, " already holds ", earlier.size(),
               " file(s) of an earlier prediction (", earlier.front(), earlier.size() > 1 ? ", ..." : "",
               "); they would mix with this run's. Choose another --out, or pass --overwrite to remove them first");
  dist::Context context(preference(args.device));
  const config::Config config = args.source.resolve();
  if (context.is_root() && !args.source.chosen().empty()) std::printf("predict: %s\n", args.source.chosen().c_str());
  model::Unet net = args.source.load(config);
  net->to(context.device());
  net->eval();
  const infer::TileOptions tiles = tile_options(args, config);
  data::Normalizer normalizer = train::normalizer(config);  // with the training set's statistics, when saved
  if (!args.normalization.empty()) normalizer.mode = data::parse_normalization(args.normalization);
  if (normalizer.mode == data::Normalization::kDataset && normalizer.channel_mean.empty() && context.is_root()) {
    std::printf(
        "predict: the model's config holds no data.channel_mean/std; shards are normalised with their own "
        "statistics and image files one by one (give them with --config or --normalization)\n");
  }
  infer::InputOptions input_options;
  input_options.normalizer = normalizer;
  // Masks are read, and checked against the model's classes, only to be evaluated.
  if (args.eval) {
    input_options.masks_dir = args.masks;
    input_options.require_masks = true;
    input_options.mask_suffix = args.mask_suffix;
    if (!args.mask_map.empty()) input_options.class_of_value = data::parse_mask_mapping(args.mask_map);
    input_options.n_classes = config.model.n_classes;
  }
  const infer::InputSet inputs(args.input, input_options);
  DPUNET_CHECK(inputs.channels() == config.model.n_channels, args.input, ": images have ", inputs.channels(),
               " channels, the model takes ", config.model.n_channels);
  const bool autocast = context.device().is_cuda() && !args.fp32;
  const infer::Forward forward = [&](const torch::Tensor& x) {
    AutocastScope scope(autocast, at::kBFloat16);
    return net->forward(x);
  };
  // Only now that the model and the inputs were read and checked: a mistake there leaves
  // the earlier prediction in place. Every rank takes the barrier (one that sees the files
  // is enough: --out may be a node's own scratch), removes what it sees, and waits for
  // the others before any rank writes, so that no late removal hits a new file.
  if (context.any_rank(!earlier.empty())) {
    for (const std::string& file : earlier_predictions(args.out)) {
      std::error_code ec;
      std::filesystem::remove(file, ec);
      DPUNET_CHECK(!ec || !std::filesystem::exists(file), file, ": cannot remove it: ", ec.message());
    }
    MPI_CHECK(MPI_Barrier(context.world()));
  }
  infer::PredictionWriter writer({args.out, args.probabilities, !args.no_png}, context.rank(), context.world_size(),
                                 config.model.n_classes);
  infer::EvaluationTable table(args.eval ? inputs.size() : 0, config.model.n_classes, inputs.ignore_label());
  // Made before the images are predicted, so that a failure costs none of them. The
  // backend follows this process's device, not the training config's: a model trained on
  // CPU ranks may predict on GPUs.
  std::shared_ptr<dist::Communicator> comm;
  if (args.eval) comm = dist::make_communicator(context, "auto");
  int64_t done = 0;
  for (int64_t i = context.rank(); i < inputs.size(); i += context.world_size()) {
    const infer::InputItem item = inputs.load(i);
    try {
      const torch::Tensor probabilities = infer::predict_probabilities(forward, item.image.to(context.device()), tiles);
      writer.write(item.name, probabilities, item.raw);
      if (args.eval && item.mask.defined()) table.add(i, probabilities, item.mask);
    } catch (const std::exception& e) {
      // Out of memory on one large image, or a model that returns another size: which
      // image is the first thing to know (the message keeps its own file:line).
      throw Error(item.source + ": " + exception_message(e));
    }
    ++done;
  }
  writer.finish();
  std::printf("rank %d: %lld images -> %s\n", context.rank(), static_cast<long long>(done), writer.path().c_str());
  if (args.eval) {
    // Ranks finish their images at their own pace: meet first, so that the all-reduce's
    // stall timeout does not count a slower rank's predicting.
    MPI_CHECK(MPI_Barrier(context.world()));
    table.all_reduce(*comm, context.device());
    // Every rank knows the total, so every rank stops together: no score from no masks.
    DPUNET_CHECK(table.evaluated() > 0, "--eval: no image of ", args.input, " has a mask",
                 args.masks.empty() ? std::string(" (give --masks DIR for image files)")
                                    : " in " + args.masks + " (named <image stem>" + args.mask_suffix +
                                          ".png/.tif/.tiff; see --mask-suffix)");
    if (context.is_root()) report(table, inputs, args.out + "/eval.json");
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment shards or PNG/TIFF images with overlap-tile inference");
  cmd->add_option("input", args->input, "Shards (directory, glob, index, .h5) or an image file or folder")->required();
  cmd->add_option("--out", args->out, "Output directory")->required();
  args->source.add_options(*cmd);
  // Masks are read only to be evaluated: without --eval these would be silently ignored.
  CLI::Option* eval = cmd->add_flag(
      "--eval", args->eval,
      "Report Dice and IoU per class against the masks (the shards' own; image files' from --masks, one for each)");
  cmd->add_option("--masks", args->masks, "Folder of masks for image inputs (same file names), for --eval")
      ->needs(eval);
  cmd->add_option("--mask-suffix", args->mask_suffix, "Mask of a.png is a<SUFFIX>.png (e.g. _mask)")->needs(eval);
  cmd->add_option("--mask-map", args->mask_map,
                  "Mask values or #rrggbb colours to classes, e.g. 0=0,255=1; VALUE=ignore leaves unlabelled "
                  "pixels unscored (default: values are classes)")
      ->needs(eval);
  cmd->add_option("--tile", args->tile, "Input tile side (default: the training patch size)");
  cmd->add_option("--overlap", args->overlap, "Overlap of neighbouring tiles, share of a tile")->capture_default_str();
  cmd->add_option("--batch", args->batch, "Tiles per forward pass")->capture_default_str();
  cmd->add_flag("--tta", args->tta, "Average over flips (4x the work)");
  cmd->add_option("--normalization", args->normalization, "dataset, per_image or none (default: the config's)");
  cmd->add_option("--device", args->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_flag("--probabilities", args->probabilities, "Also store per-class probabilities in the HDF5 output");
  cmd->add_flag("--no-png", args->no_png, "Skip the PNG masks and overlays");
  cmd->add_flag("--overwrite", args->overwrite, "Remove an earlier prediction's files from --out first");
  cmd->add_flag("--fp32", args->fp32, "No bf16 autocast on GPU");
  cmd->callback([args] { run(*args); });
}

}  // namespace dpunet::app
