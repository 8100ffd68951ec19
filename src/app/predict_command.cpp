// `dpunet predict INPUT --out DIR (--checkpoint C... | --weights W...)`: overlap-tile
// segmentation of shards or image files, on CPU or GPU, by one process or by every rank
// of an mpirun job (image files dealt by size), with one model or an ensemble (the
// models' class probabilities averaged, as nnU-Net combines its cross-validation folds).
// --eval reports Dice and IoU per class where masks are known, pooled over all images of
// all ranks and per image.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "app/cli_checks.h"
#include "app/commands.h"
#include "app/model_source.h"
#include "app/predict_out_folder.h"
#include "common/atomic_file.h"
#include "common/autocast_scope.h"
#include "common/directory_lock.h"
#include "common/error.h"
#include "common/exception_message.h"
#include "common/text.h"
#include "data/dataset.h"
#include "data/import.h"
#include "dist/byte_messages.h"
#include "dist/context.h"
#include "dist/core_share.h"
#include "dist/make_communicator.h"
#include "dist/mpi_check.h"
#include "infer/ensemble_rows.h"
#include "infer/evaluation.h"
#include "infer/input_rows.h"
#include "infer/inputs.h"
#include "infer/outputs.h"
#include "infer/postprocess.h"
#include "infer/sliding_window.h"
#include "model/unet_options.h"
#include "train/rank_agreement.h"
#include "train/setup.h"

namespace dpunet::app {
namespace {

// The MPI tag of a band of labels going to its image's owner.
constexpr int kBandTag = 17;

struct PredictArgs {
  std::string input, masks, mask_suffix, mask_map, out, normalization, keep_largest, device = "auto";
  ModelArguments models;
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
  // Named as the user gave it, or as the default it came from.
  const std::string tile = args.tile > 0
                               ? "--tile " + std::to_string(o.input_tile)
                               : "the tile of " + std::to_string(o.input_tile) +
                                     (config.augment.patch_size > 0 ? " (the training patch size; --tile sets another)"
                                                                    : " (the default; --tile sets another)");
  o.output_tile = model::output_size_or_fail(unet, o.input_tile, tile);
  const std::string problem = model::bottom_norm_problem(unet, o.input_tile, o.input_tile, /*training_batch=*/0);
  DPUNET_CHECK(problem.empty(), tile, ": ", problem, "; give a larger --tile");
  // Above 0.9 the tiles multiply without end (0.999 of a 256 tile steps one pixel: 390
  // million tiles on a 20000x20000 slide); 0.9 already predicts each pixel ~100 times.
  DPUNET_CHECK(args.overlap >= 0 && args.overlap <= 0.9, "--overlap must be in [0, 0.9], got ", args.overlap);
  DPUNET_CHECK(args.batch >= 1, "--batch must be at least 1, got ", args.batch);
  o.overlap = args.overlap;
  o.batch = args.batch;
  o.flip_tta = args.tta;
  return o;
}

// One model of the ensemble (of one model, usually), ready to predict.
struct Member {
  std::string file;      // the checkpoint or weights file read
  std::string identity;  // its name and CRC-32, to compare between ranks
  config::Config config;
  model::Unet net{nullptr};
  infer::TileOptions tiles;
  data::Normalizer normalizer;  // its training set's statistics: each model sees inputs as it was trained
  size_t inputs = 0;            // which of the InputSets normalises that way
};

bool same_normalization(const data::Normalizer& a, const data::Normalizer& b) {
  return a.mode == b.mode && a.channel_mean == b.channel_mean && a.channel_std == b.channel_std &&
         a.pixel_type == b.pixel_type;
}

// Reads every model and checks that they can be averaged: the same input channels and
// classes. Their tiles may differ (another patch size, valid padding).
std::vector<Member> load_members(const PredictArgs& args, const dist::Context& context) {
  std::vector<Member> members;
  const std::vector<ModelSource> sources = args.models.sources();
  for (const ModelSource& source : sources) {
    Member m;
    m.config = source.resolve();
    m.file = source.checkpoint.empty() ? source.weights : source.checkpoint_file();
    m.identity = source.identity();
    if (context.is_root() && !source.chosen().empty()) std::printf("predict: %s\n", source.chosen().c_str());
    // A run directory and its own best checkpoint name one file: averaging a model with
    // itself would pass for an ensemble.
    for (const Member& earlier : members) {
      std::error_code ec;
      DPUNET_CHECK(!std::filesystem::equivalent(earlier.file, m.file, ec), "predict: ", source.argument(), " names ",
                   m.file, ", which is already in the ensemble: give each model once");
    }
    if (!members.empty()) {
      const config::ModelConfig &first = members.front().config.model, &model = m.config.model;
      DPUNET_CHECK(model.n_channels == first.n_channels && model.n_classes == first.n_classes,
                   "predict: ", source.argument(), ": ", model.n_channels, " input channel(s) and ", model.n_classes,
                   " classes; ", members.front().file, ": ", first.n_channels, " and ", first.n_classes,
                   ": the models of an ensemble must agree in both");
    }
    m.net = source.load(m.config);
    m.net->to(context.device());
    m.net->eval();
    try {
      m.tiles = tile_options(args, m.config);
    } catch (const std::exception& e) {
      if (sources.size() == 1) throw;
      throw Error("model " + m.file + ": " + exception_message(e));
    }
    m.normalizer = train::normalizer(m.config);
    if (!args.normalization.empty()) m.normalizer.mode = data::parse_normalization(args.normalization);
    if (m.normalizer.mode == data::Normalization::kDataset && m.normalizer.channel_mean.empty() && context.is_root()) {
      std::printf(
          "predict: %s's config holds no data.channel_mean/std; shards are normalised with their own "
          "statistics and image files one by one (--normalization chooses another way; for --weights, --config "
          "can give the statistics)\n",
          m.file.c_str());
    }
    members.push_back(std::move(m));
  }
  if (context.is_root() && members.size() > 1) {
    std::printf("predict: an ensemble of %zu models; their class probabilities are averaged\n", members.size());
  }
  return members;
}

// The per-channel affine from the inputs of a set normalising by `from` to those of one
// normalising by `to` (both value * scale + shift of the stored values); none where `to`
// is not fixed.
std::optional<std::vector<data::ChannelAffine>> relative_affine(
    const std::vector<data::ChannelAffine>& from, const std::optional<std::vector<data::ChannelAffine>>& to) {
  if (!to || to->size() != from.size()) return std::nullopt;
  std::vector<data::ChannelAffine> relative(from.size());
  for (size_t c = 0; c < from.size(); ++c) {
    if (from[c].scale == 0) return std::nullopt;
    relative[c].scale = (*to)[c].scale / from[c].scale;
    relative[c].shift = (*to)[c].shift - relative[c].scale * from[c].shift;
  }
  return relative;
}

// An affine's scale and shift as [1, C, 1, 1] tensors on `device`, for tiles [B, C, H, W].
std::pair<torch::Tensor, torch::Tensor> affine_tensors(const std::vector<data::ChannelAffine>& affine,
                                                       const torch::Device& device) {
  std::vector<float> scale, shift;
  for (const data::ChannelAffine& a : affine) {
    scale.push_back(static_cast<float>(a.scale));
    shift.push_back(static_cast<float>(a.shift));
  }
  const auto channels = static_cast<int64_t>(affine.size());
  return {torch::tensor(scale).view({1, channels, 1, 1}).to(device),
          torch::tensor(shift).view({1, channels, 1, 1}).to(device)};
}

// The images, or bands of image rows, this rank predicts, in input order. Shards (small
// samples of one size) go round the ranks whole; image files are shared by size (fewer
// than the ranks: in bands of at least `min_band_rows`, unless `split` is false), from
// rank 0's reading of their headers: a header that one rank could not read, or a file
// that differs between nodes, must not deal an image twice or to nobody.
std::vector<infer::ImageShare> shares_of_rank(const infer::InputSet& inputs, dist::Communicator& comm,
                                              const dist::Context& context, bool split, int64_t min_band_rows) {
  if (inputs.dataset() != nullptr) {
    std::vector<infer::ImageShare> mine;
    for (int64_t i = context.rank(); i < inputs.size(); i += context.world_size()) {
      infer::ImageShare share;
      share.index = i;
      share.row_end = inputs.dataset()->header().height;
      share.owner = context.rank();
      mine.push_back(share);
    }
    return mine;
  }
  torch::Tensor sizes = torch::zeros({inputs.size(), 2}, torch::kLong);
  if (context.is_root()) {
    for (int64_t i = 0; i < inputs.size(); ++i) {
      const infer::ImageSize size = inputs.image_size(i);
      sizes[i][0] = size.height;
      sizes[i][1] = size.width;
    }
  }
  if (context.world_size() > 1) {
    sizes = sizes.to(comm.device());
    comm.broadcast(sizes, 0);
    sizes = sizes.cpu();
  }
  const auto size_of = sizes.accessor<int64_t, 2>();
  std::vector<infer::ImageSize> images;
  for (int64_t i = 0; i < inputs.size(); ++i) images.push_back({size_of[i][0], size_of[i][1]});
  return infer::share_images(images, context.rank(), context.world_size(), split, min_band_rows);
}

// When a long prediction says how far it is: 30 s after its start, then every 30 s.
class ProgressClock {
 public:
  bool due() {
    const double now = seconds();
    if (now < next_) return false;
    next_ = (std::floor(now / 30) + 1) * 30;  // the next multiple: one line after a long band
    return true;
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double next_ = 30;
};

// The inputs as each model expects them: the first InputSet also reads the masks (for
// --eval) and makes the display copies; models trained on other statistics get their own.
std::vector<std::unique_ptr<infer::InputSet>> open_inputs(const PredictArgs& args, std::vector<Member>& members,
                                                          infer::InputOptions options) {
  std::vector<std::unique_ptr<infer::InputSet>> sets;
  std::vector<const data::Normalizer*> normalizers;
  for (Member& m : members) {
    const auto same = std::find_if(normalizers.begin(), normalizers.end(),
                                   [&](const data::Normalizer* n) { return same_normalization(*n, m.normalizer); });
    m.inputs = static_cast<size_t>(same - normalizers.begin());
    if (same != normalizers.end()) continue;
    options.normalizer = m.normalizer;
    sets.push_back(std::make_unique<infer::InputSet>(args.input, options));
    normalizers.push_back(&m.normalizer);
    options.read_masks = false;  // the first set's are the ones scored
    options.display = false;     // and the first set's display copies the ones drawn
    options.require_masks = false;
  }
  const int64_t channels = members.front().config.model.n_channels;
  DPUNET_CHECK(sets.front()->channels() == channels, args.input, ": images have ", sets.front()->channels(),
               " channels, the model takes ", channels,
               sets.front()->channels() == 3 && channels == 1
                   ? " (palette and RGBA images read as RGB, even when their colours are greys: save them as grey)"
                   : "");
  return sets;
}

// eval.json holds every image's scores and the models that made them; the console gets
// the summaries.
void report(const infer::EvaluationTable& table, const infer::InputSet& inputs, const std::vector<Member>& members,
            const infer::KeepLargest& keep, const std::string& path) {
  nlohmann::json result = table.report(inputs.names());
  result["models"] = nlohmann::json::array();
  for (const Member& m : members) result["models"].push_back(m.file);
  // The masks scored are the post-processed ones.
  result["keep_largest"] = keep.text.empty() ? nlohmann::json() : nlohmann::json(keep.text);
  // JSON text is UTF-8: a file name in another encoding is written with U+FFFD for the
  // bytes that are not, rather than failing after every image was predicted.
  constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
  write_file_atomically(path, result.dump(2, ' ', false, kReplace) + "\n");
  result.erase("per_image");
  result.erase("models");
  std::printf("eval: %s\n", result.dump(-1, ' ', false, kReplace).c_str());
}

// What the inputs are, to compare between ranks: each lists the folder or glob for
// itself, and takes its share of its own list.
std::string describe_inputs(const infer::InputSet& inputs) {
  if (inputs.dataset() != nullptr) return train::describe_dataset(*inputs.dataset());
  return train::describe_names(inputs.names(), "images");
}

infer::InputOptions input_options(const PredictArgs& args, const config::ModelConfig& model) {
  infer::InputOptions o;
  o.mask_suffix = args.mask_suffix;
  o.display = !args.no_png;  // the overlays' only use
  if (!args.eval) {
    // Only to leave out the masks that lie among the images, in whichever folder.
    o.masks_among_images = !args.mask_suffix.empty();
    o.read_masks = false;
    return o;
  }
  // Masks are read, and checked against the model's classes, only to be evaluated.
  o.masks_dir = args.masks;
  o.require_masks = true;
  if (!args.mask_map.empty()) o.mask_mapping = data::parse_mask_mapping(args.mask_map);
  o.n_classes = model.n_classes;
  return o;
}

void run(const PredictArgs& args) {
  dist::Context context(preference(args.device));
  dist::share_cores(context);
  // Made before anything is read, so that a failed check on some ranks ends them all
  // together. The backend follows this process's device, not the training config's: a
  // model trained on CPU ranks may predict on GPUs.
  const std::shared_ptr<dist::Communicator> comm = dist::make_communicator(context, "auto");
  infer::EarlierOutputs earlier;
  std::vector<Member> members;
  std::vector<std::unique_ptr<infer::InputSet>> input_sets;
  infer::KeepLargest keep;
  train::fail_together(*comm, [&] {
    check_out_folder(args.out, args.input, args.masks);
    earlier = infer::find_earlier_outputs(args.out);
    check_earlier_outputs(args.out, args.overwrite, earlier);
    members = load_members(args, context);
    keep = infer::parse_keep_largest(args.keep_largest, members.front().config.model.n_classes);
    input_sets = open_inputs(args, members, input_options(args, members.front().config.model));
    // Last, so that a mistake above leaves no empty folder; here, so that a rank that
    // cannot write there (a node-local --out) stops every rank with one message.
    std::error_code ec;
    std::filesystem::create_directories(args.out, ec);
    DPUNET_CHECK(!ec, "--out ", args.out, ": cannot create the folder: ", ec.message());
    DPUNET_CHECK(::access(args.out.c_str(), W_OK) == 0, "--out ", args.out, ": this rank cannot write there");
  });
  // One prediction at a time in a folder: a second run would truncate the first's
  // manifests and write over its files. Taken once the folder exists; what earlier runs
  // left is read again under it (a run that held it may have written since the check).
  std::optional<DirectoryLock> lock;
  train::fail_together(*comm, [&] {
    if (context.is_root()) lock.emplace(args.out, "--out", "run");
  });
  train::fail_together(*comm, [&] {
    earlier = infer::find_earlier_outputs(args.out);
    check_earlier_outputs(args.out, args.overwrite, earlier);
  });
  train::check_same_on_every_rank(*comm, describe_inputs(*input_sets.front()), "the inputs " + args.input);
  std::string models;
  for (const Member& m : members) models += (models.empty() ? "" : ", ") + m.identity;
  train::check_same_on_every_rank(*comm, models, members.size() == 1 ? "the model file" : "the list of model files");
  const config::ModelConfig& model = members.front().config.model;
  const infer::InputSet& inputs = *input_sets.front();
  const bool autocast = context.device().is_cuda() && !args.fp32;
  // Only now that the model and the inputs were read and checked: a mistake there leaves
  // the earlier prediction in place, and one later leaves it set aside.
  EarlierPrediction replaced(context, args.out, earlier);
  infer::PredictionWriter writer({args.out, args.probabilities, !args.no_png}, context.rank(), context.world_size(),
                                 model.n_classes);
  // Progress lines: each image as it is written, and a slide's rows now and then.
  const std::string who = context.world_size() > 1 ? "rank " + std::to_string(context.rank()) + ": " : "predict: ";
  // The class labels of the share's rows of its image [rows, W] (uint8, on the CPU) from
  // the models' averaged probabilities, which go to the writer band by band as their rows
  // are final: neither the class sums nor the probabilities of a whole slide are ever
  // held, nor its pixels as floats (the models read the rows their next tiles need).
  // `item` is the first InputSet's; its rows are read here. The owner of an image gets
  // the overlay's display copy too.
  struct Predicted {
    torch::Tensor labels, display;
    int64_t height = 0, width = 0;
  };
  const auto predict = [&](const infer::ImageShare& share, infer::InputItem& item) {
    const int64_t index = share.index;
    const bool owner = share.owner == context.rank();
    // Each InputSet's rows, read once for all its models: one reading in all, usually.
    // Models that normalise otherwise than the first InputSet take its rows through their
    // own affine, tile by tile, where both are fixed (statistics, bit depth); per-image
    // standardisation alone reads the file again, its own way.
    struct View {
      std::shared_ptr<infer::SharedRows> rows;
      torch::Tensor scale, shift;  // [1, C, 1, 1], or undefined
    };
    std::vector<View> views(input_sets.size());
    views[0].rows = std::make_shared<infer::SharedRows>(std::move(item.image), context.device());
    const auto first_affine = input_sets.size() > 1 ? input_sets[0]->fixed_affine(index) : std::nullopt;
    for (size_t k = 1; k < input_sets.size(); ++k) {
      const auto affine =
          first_affine ? relative_affine(*first_affine, input_sets[k]->fixed_affine(index)) : std::nullopt;
      if (affine) {
        views[k].rows = views[0].rows;
        std::tie(views[k].scale, views[k].shift) = affine_tensors(*affine, context.device());
      } else {
        views[k].rows = std::make_shared<infer::SharedRows>(input_sets[k]->open(index, /*pixels_only=*/true).image,
                                                            context.device());
      }
    }
    std::vector<infer::EnsembleMember> parts;
    for (const Member& m : members) {
      const View& view = views[m.inputs];
      const infer::Forward forward = [net = m.net.ptr(), autocast, scale = view.scale,
                                      shift = view.shift](const torch::Tensor& x) {
        const torch::Tensor input = scale.defined() ? torch::addcmul(shift, x, scale) : x;
        AutocastScope scope(autocast, at::kBFloat16);
        return net->forward(input);
      };
      const std::string label = members.size() == 1 ? "" : "model " + m.file;
      try {
        // A whole image's rows are its file's, whatever rank 0 read in its header.
        const infer::RowBand band = share.whole() ? infer::RowBand{} : infer::RowBand{share.row_begin, share.row_end};
        parts.push_back({label, infer::TiledPrediction(forward, view.rows, m.tiles, band)});
      } catch (const std::exception& e) {
        if (label.empty()) throw;
        throw Error(label + ": " + exception_message(e));
      }
    }
    const std::shared_ptr<infer::SharedRows> first_rows = views[0].rows;
    views.clear();
    infer::EnsembleRows rows(std::move(parts));
    if (owner) writer.start(item.name, rows.height(), rows.width());
    ProgressClock progress;
    const torch::Tensor labels = infer::class_map(rows, [&](const infer::ProbabilityRows& band) {
      if (owner) writer.write_probabilities(band.row, band.probabilities);
      // A slide takes long: said now and then (at the rows handed on, which the device
      // may not have reached yet).
      if (progress.due()) {
        std::printf("%s%s: %lld of %lld rows, %.0f s\n", who.c_str(), item.name.c_str(),
                    static_cast<long long>(rows.rows_done()), static_cast<long long>(rows.height()),
                    progress.seconds());
        std::fflush(stdout);
      }
    });
    // One byte per pixel crosses to the host, once; the overlay's first channel, read
    // along the way, is ready once every row was (the rows below the owner's band are
    // read for it alone).
    Predicted predicted{labels.cpu().contiguous(), {}, rows.height(), rows.width()};
    if (owner && !args.no_png) {
      first_rows->read_to_end();
      predicted.display = first_rows->source().display();
    }
    return predicted;
  };
  infer::EvaluationTable table(args.eval ? inputs.size() : 0, model.n_classes, inputs.ignore_label());
  int64_t done = 0, bands_sent = 0;
  // Stored probabilities would have to cross between ranks a band at a time: a slide is
  // cut into bands only for its labels.
  int64_t min_band_rows = 0;
  for (const Member& m : members) min_band_rows = std::max(min_band_rows, m.tiles.output_tile);
  const std::vector<infer::ImageShare> shares =
      shares_of_rank(inputs, *comm, context, /*split=*/!args.probabilities, min_band_rows);
  int64_t owned = 0;
  for (const infer::ImageShare& share : shares) owned += share.owner == context.rank() ? 1 : 0;
  for (const infer::ImageShare& share : shares) {
    const int64_t i = share.index;
    const bool owner = share.owner == context.rank();
    const auto started = std::chrono::steady_clock::now();
    infer::InputItem item;
    try {
      item = inputs.open(i, /*pixels_only=*/!owner);
    } catch (const Error&) {
      throw;  // names its file already
    } catch (const std::exception& e) {
      // Out of memory reading a large image or its mask: say which.
      throw Error("input " + inputs.name(i) + ": " + exception_message(e));
    }
    try {
      Predicted predicted = predict(share, item);
      if (!owner) {
        // The rows go to the image's owner, which writes the image once every band came.
        dist::send_bytes(predicted.labels.data_ptr(), predicted.labels.nbytes(), share.owner, kBandTag,
                         context.world());
        std::printf("%s%s: rows %lld to %lld, to rank %d, %.1f s\n", who.c_str(), item.name.c_str(),
                    static_cast<long long>(share.row_begin), static_cast<long long>(share.row_end), share.owner,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        std::fflush(stdout);
        ++bands_sent;
        continue;
      }
      torch::Tensor labels = predicted.labels;
      if (!share.others.empty()) {
        labels = torch::empty({predicted.height, predicted.width}, torch::kByte);
        labels.slice(0, share.row_begin, share.row_end).copy_(predicted.labels);
        for (const infer::BandOfRank& band : share.others) {
          const torch::Tensor rows = labels.slice(0, band.begin, band.end);  // contiguous: whole rows
          dist::receive_bytes(rows.data_ptr(), rows.nbytes(), band.rank, kBandTag, context.world());
        }
      }
      if (keep.any()) infer::keep_largest_regions(labels, keep);
      writer.write(item.name, labels, predicted.display);
      if (args.eval && item.mask.defined()) table.add(i, labels, item.mask);
    } catch (const infer::InputReadError&) {
      throw;  // names its file already
    } catch (const std::exception& e) {
      // Out of memory on one large image, or a model that returns another size: which
      // image is the first thing to know (the message keeps its own file:line).
      throw Error(item.source + ": " + exception_message(e));
    }
    ++done;
    std::printf("%s%s: %lld/%lld, %.1f s\n", who.c_str(), item.name.c_str(), static_cast<long long>(done),
                static_cast<long long>(owned),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    std::fflush(stdout);
  }
  writer.finish();
  // A rank that predicted only bands of other ranks' images says so, not just "0 image(s)".
  const std::string bands =
      bands_sent == 0 ? std::string() : ", and rows of " + counted(bands_sent, "image") + " for other ranks";
  std::printf("%s%lld image(s) -> %s%s\n", who.c_str(), static_cast<long long>(done), writer.path().c_str(),
              bands.c_str());
  if (args.eval) {
    // Ranks finish their images at their own pace: meet first, so that the all-reduce's
    // stall timeout does not count a slower rank's predicting.
    MPI_CHECK(MPI_Barrier(context.world()));
    table.all_reduce(*comm, context.device());
    // Every rank knows the total, so every rank stops together: no score from no masks.
    if (table.evaluated() == 0) {
      DPUNET_FAIL_ON_EVERY_RANK(false, "--eval: no image of ", args.input, " has a mask (with a labelled pixel)",
                                args.masks.empty() ? std::string(" (give --masks DIR for image files)")
                                                   : " in " + args.masks + " (named <image stem>" + args.mask_suffix +
                                                         ".png/.tif/.tiff; see --mask-suffix)");
    }
    if (context.is_root()) {
      writer.manifest().add("eval.json");
      report(table, inputs, members, keep, args.out + "/eval.json");
      writer.manifest().written("eval.json");
    }
  }
  replaced.finished();
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment shards or PNG/TIFF images with overlap-tile inference");
  cmd->add_option("input", args->input, "Shards (directory, glob, index, .h5) or an image file or folder")
      ->required()
      ->check(not_empty());
  cmd->add_option("--out", args->out, "Output directory")->required()->check(not_empty());
  args->models.add_options(*cmd);
  // Masks are read only to be evaluated: without --eval these would be silently ignored.
  CLI::Option* eval = cmd->add_flag(
      "--eval", args->eval,
      "Report Dice and IoU per class against the masks (the shards' own; image files' from --masks, one for each)");
  cmd->add_option("--masks", args->masks, "Folder of masks for image inputs (same file names), for --eval")
      ->needs(eval)
      ->check(not_empty());
  cmd->add_option("--mask-suffix", args->mask_suffix,
                  "Mask of a.png is a<SUFFIX>.png (e.g. _mask); without --eval, images so named are left out");
  cmd->add_option("--mask-map", args->mask_map,
                  "Mask values or #rrggbb colours to classes, e.g. 0=0,255=1; VALUE=ignore leaves unlabelled "
                  "pixels unscored (default: values are classes)")
      ->needs(eval);
  // 0 stands for "not given" in PredictArgs; a 0 given is refused rather than taken for it.
  cmd->add_option("--tile", args->tile, "Input tile side (default: the training patch size)")->check(at_least(1));
  cmd->add_option("--overlap", args->overlap, "Overlap of neighbouring tiles, share of a tile (0 to 0.9)")
      ->check(number_from(0.0, 0.9, "from 0 to 0.9"))
      ->capture_default_str();
  cmd->add_option("--batch", args->batch, "Tiles per forward pass")->capture_default_str()->check(at_least(1));
  cmd->add_flag("--tta", args->tta, "Average over flips (4x the work)");
  cmd->add_option("--keep-largest", args->keep_largest,
                  "Post-processing: keep only the largest connected region of each class listed (1,3), of "
                  "every foreground class (all), or of the foreground as a whole (foreground)")
      ->check(not_empty());
  cmd->add_option("--normalization", args->normalization, "dataset, per_image or none (default: the config's)")
      ->check(CLI::IsMember({"dataset", "per_image", "none"}));
  cmd->add_option("--device", args->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_flag("--probabilities", args->probabilities, "Also store per-class probabilities in the HDF5 output");
  cmd->add_flag("--no-png", args->no_png, "Skip the PNG masks and overlays");
  cmd->add_flag("--overwrite", args->overwrite,
                "Replace an earlier prediction's files in --out (kept aside until this run finishes)");
  cmd->add_flag("--fp32", args->fp32, "No bf16 autocast on GPU");
  cmd->callback([args] { run(*args); });
}

}  // namespace dpunet::app
