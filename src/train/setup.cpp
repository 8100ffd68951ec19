// Config -> model, optimizer, loss, DDP and loader options.
#include "train/setup.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/text.h"
#include "data/normalize.h"

namespace dpunet::train {

model::UnetOptions unet_options(const config::Config& c, std::shared_ptr<dist::Communicator> comm) {
  model::UnetOptions o;
  o.n_channels = c.model.n_channels;
  o.n_classes = c.model.n_classes;
  o.bilinear = c.model.bilinear;
  o.base_channels = c.model.base_channels;
  o.depth = c.model.depth;
  o.norm = model::parse_norm(c.model.norm);
  o.padding = model::parse_padding(c.model.padding);
  o.fuse_norm_relu = c.model.fuse_norm_relu;
  o.pool_concat_kernels = c.model.pool_concat_kernels;
  if (o.norm == model::Norm::kSyncBatch) o.communicator = std::move(comm);
  return o;
}

model::Unet build_model(const config::Config& c, std::shared_ptr<dist::Communicator> comm) {
  model::Unet net{nullptr};
  try {
    net = model::Unet(unet_options(c, std::move(comm)));
  } catch (const std::bad_alloc&) {
    // The widths double at every level: a large base and depth ask for terabytes.
    DPUNET_FAIL("model.base_channels ", c.model.base_channels, " with model.depth ", c.model.depth,
                ": the model's weights do not fit in memory (the deepest level has ",
                c.model.base_channels << c.model.depth, " channels)");
  } catch (const c10::Error& e) {
    if (std::string(e.what()).find("allocate") == std::string::npos) throw;
    DPUNET_FAIL("model.base_channels ", c.model.base_channels, " with model.depth ", c.model.depth,
                ": the model's weights do not fit in memory (", e.what_without_backtrace(), ")");
  }
  if (c.model.checkpointing != "none") {
    net->use_checkpointing(true, model::parse_checkpoint_policy(c.model.checkpointing));
  }
  // After the policy, which sets its own choice.
  if (c.model.split_skip_conv != "auto") net->split_skip_convolutions(c.model.split_skip_conv == "true");
  return net;
}

void use_channels_last_weights(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (p.dim() != 4) continue;
    // Always a fresh NHWC copy, as Module.to(memory_format=...) makes: contiguous() keeps a
    // one-input-channel weight's NCHW strides (both layouts describe it), and cuDNN then
    // gives the first convolution an NCHW output, which every later layer pays for.
    torch::Tensor nhwc = torch::empty_like(p.data(), at::MemoryFormat::ChannelsLast);
    nhwc.copy_(p.data());
    p.set_data(nhwc);
  }
}

std::unique_ptr<torch::optim::Optimizer> build_optimizer(const config::Config& c,
                                                         const std::vector<torch::Tensor>& parameters) {
  const auto& o = c.optimizer;
  OptimizerSettings s;
  s.name = o.name;
  s.implementation = parse_optimizer_implementation(o.implementation);
  s.lr = o.lr;
  s.weight_decay = o.weight_decay;
  s.beta1 = o.beta1;
  s.beta2 = o.beta2;
  s.eps = o.eps;
  s.momentum = o.momentum;
  return make_optimizer(s, parameters);
}

LossOptions loss_options(const config::Config& c) {
  LossOptions o;
  o.ce_weight = c.loss.ce_weight;
  o.dice_weight = c.loss.dice_weight;
  o.class_weights = c.loss.class_weights;
  o.dice_include_background = c.loss.dice_include_background;
  return o;
}

dist::DdpOptions ddp_options(const config::Config& c) {
  dist::DdpOptions o;
  constexpr double kMiB = 1024.0 * 1024.0;
  o.bucket_caps.first_bytes = static_cast<int64_t>(c.distributed.first_bucket_mb * kMiB);
  o.bucket_caps.bytes = static_cast<int64_t>(c.distributed.bucket_mb * kMiB);
  if (c.distributed.wire_dtype == "bf16") o.wire_dtype = dist::WireDtype::kBFloat16;
  if (c.distributed.wire_dtype == "fp16") o.wire_dtype = dist::WireDtype::kFloat16;
  return o;
}

data::SamplerOptions sampler_options(const config::Config& c) {
  data::SamplerOptions o;
  o.seed = c.run.seed;
  o.remainder = c.data.remainder == "drop" ? data::Remainder::kDrop : data::Remainder::kPad;
  o.batch = c.train.batch_size;
  o.dataset = "data.train " + c.data.train;
  return o;
}

data::Normalizer normalizer(const config::Config& c) {
  data::Normalizer n(data::parse_normalization(c.data.normalization));
  n.channel_mean = c.data.channel_mean;
  n.channel_std = c.data.channel_std;
  n.pixel_type = c.data.stats_pixel_type;
  return n;
}

data::LoaderOptions loader_options(const config::Config& c, bool pin_memory) {
  data::LoaderOptions o;
  o.batch_size = c.train.batch_size;
  o.workers = static_cast<int>(c.data.workers);
  o.prefetch_batches = static_cast<int>(c.data.prefetch);
  o.pin_memory = pin_memory;
  o.normalization = normalizer(c);
  o.seed = c.run.seed;
  o.augment = c.augment.enabled;
  auto& a = o.augmentation;
  const auto& g = c.augment;
  a.patch_height = a.patch_width = g.patch_size;
  a.context_margin = model::context_margin(unet_options(c, nullptr));
  a.foreground_probability = g.foreground;
  a.classes = c.model.n_classes;
  a.flip_probability = g.flip;
  a.rotate90_probability = g.rotate90;
  a.affine_probability = g.affine;
  a.max_rotation_degrees = g.max_rotation_degrees;
  a.scale_min = g.scale_min;
  a.scale_max = g.scale_max;
  a.elastic_probability = g.elastic;
  a.elastic_grid = static_cast<int>(g.elastic_grid);
  a.elastic_sigma = g.elastic_sigma;
  a.brightness_probability = g.brightness;
  a.brightness_range = g.brightness_range;
  a.contrast_probability = g.contrast;
  a.contrast_range = g.contrast_range;
  a.gamma_probability = g.gamma;
  a.gamma_invert_probability = g.gamma_invert;
  a.gamma_min = g.gamma_min;
  a.gamma_max = g.gamma_max;
  a.noise_probability = g.noise;
  a.noise_std = g.noise_std;
  a.blur_probability = g.blur;
  a.blur_sigma_min = g.blur_sigma_min;
  a.blur_sigma_max = g.blur_sigma_max;
  a.low_resolution_probability = g.low_resolution;
  a.low_resolution_min = g.low_resolution_min;
  return o;
}

std::shared_ptr<const data::Dataset> open_dataset(const config::Config& config, const std::string& key,
                                                  const std::string& spec) {
  std::shared_ptr<const data::Dataset> dataset;
  try {
    dataset = std::make_shared<const data::Dataset>(spec);
  } catch (const Error& e) {
    throw Error(key + ": " + e.what());
  }
  // synth and import write the training and validation sets (or the folds) side by side:
  // the whole folder as one set would train, or validate, on both.
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) {
    std::set<std::string> sets;
    for (const auto& shard : dataset->shards()) {
      if (const std::string set = data::written_set_of(shard->path()); !set.empty()) sets.insert(set);
    }
    if (sets.size() > 1) {
      std::string listing;
      for (const std::string& set : sets) listing += (listing.empty() ? "" : ", ") + set + "-*.h5";
      const std::string example = sets.count("train") && key == "data.train" ? "train"
                                  : sets.count("val") && key == "data.val"   ? "val"
                                                                             : *sets.begin();
      DPUNET_FAIL(key, ": ", spec, " holds shards of several sets (", listing, "): name one, e.g. ",
                  (std::filesystem::path(spec) / (example + "-*.h5")).string());
    }
  }
  check_data_fits_model(config, dataset->header(), key + " " + spec, /*training=*/key == "data.train");
  return dataset;
}

void configure_gpu_numerics(const config::Config& config) {
  auto& context = at::globalContext();
  const bool deterministic = config.precision.deterministic;
  // Autotuning picks by timing, which differs from one process to the next: a resumed
  // run could then pick other algorithms than the run it continues.
  DPUNET_CHECK(!deterministic || !config.model.bilinear,
               "precision.deterministic: model.bilinear's up-sampling has no deterministic gradient on GPUs (ATen "
               "adds it with atomics); train with transposed convolutions (model.bilinear: false) or leave "
               "precision.deterministic off");
  context.setBenchmarkCuDNN(config.precision.cudnn_benchmark && !deterministic);
  context.setDeterministicCuDNN(deterministic);
  context.setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
  // Deterministic mode also fills every new tensor with NaN, a debugging aid that costs a
  // write of each activation; dpunet writes all it allocates.
  if (deterministic) context.setDeterministicFillUninitializedMemory(false);
  // cuBLAS reduces deterministically only with a fixed workspace, set before its first use
  // (before the communicator's threads start: setenv races their getenv).
  if (deterministic) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
}

void check_data_fits_model(const config::Config& c, const data::ShardHeader& h, const std::string& which,
                           bool training) {
  DPUNET_CHECK(h.channels == c.model.n_channels, which, ": images have ", h.channels,
               " channels but model.n_channels is ", c.model.n_channels);
  DPUNET_CHECK(h.n_classes == c.model.n_classes, which, ": masks have ", h.n_classes,
               " classes but model.n_classes is ", c.model.n_classes);
  // Whole images are the model's input: found now, not at the first forward.
  if (c.augment.patch_size == 0) {
    const model::UnetOptions unet = unet_options(c, nullptr);
    for (const int64_t side : {h.height, h.width}) {
      model::output_size_or_fail(
          unet, side,
          which + ": augment.patch_size is 0 (whole images as input), and an image side of " + std::to_string(side));
    }
    // As config validation checks patches (it does not know the images' size).
    const bool sync = unet.norm == model::Norm::kSyncBatch;  // check_sync_batch_norm's, knowing the ranks
    const std::string problem =
        model::bottom_norm_problem(unet, h.height, h.width, training && !sync ? c.train.batch_size : 0);
    const bool batch = unet.norm == model::Norm::kBatch, group = unet.norm == model::Norm::kGroup;
    DPUNET_CHECK(problem.empty(), which, ": augment.patch_size is 0 (whole images as input), and with ", h.height, "x",
                 h.width, " images ", problem, " (model.norm",
                 batch   ? ", train.batch_size): use a larger batch, a"
                 : group ? ", model.base_channels): use a larger model.base_channels, a"
                         : "): use a",
                 " smaller model.depth, or norm ", group ? "batch" : "group");
  }
}

void check_sync_batch_norm(const config::Config& c, const data::ShardHeader& train, int world_size) {
  model::UnetOptions unet = unet_options(c, nullptr);
  if (unet.norm != model::Norm::kSyncBatch) return;
  const int64_t height = c.augment.patch_size > 0 ? c.augment.patch_size : train.height;
  const int64_t width = c.augment.patch_size > 0 ? c.augment.patch_size : train.width;
  const std::string problem = model::bottom_norm_problem(unet, height, width, c.train.batch_size * world_size);
  DPUNET_CHECK(problem.empty(), "model.norm sync_batch, train.batch_size ", c.train.batch_size, " on ", world_size,
               world_size == 1 ? " rank" : " ranks", ": with ", height, "x", width,
               c.augment.patch_size > 0 ? " patches " : " images ", problem,
               ": use a larger batch or patch, more ranks, or norm group");
}

void check_no_shared_shards(const data::Dataset& train, const data::Dataset& val, const config::Config& config) {
  std::set<std::filesystem::path> training;
  std::error_code ec;
  for (const auto& shard : train.shards()) training.insert(std::filesystem::weakly_canonical(shard->path(), ec));
  for (const auto& shard : val.shards()) {
    if (training.count(std::filesystem::weakly_canonical(shard->path(), ec)) == 0) continue;
    DPUNET_FAIL("data.train (", config.data.train, ") and data.val (", config.data.val, ") both read ", shard->path(),
                ": validation would score samples the model trained on. Give each a set of its own, e.g. ",
                (std::filesystem::path(shard->path()).parent_path() / "train-*.h5").string(), " and ",
                (std::filesystem::path(shard->path()).parent_path() / "val-*.h5").string());
  }
}

void check_same_class_names(const data::Dataset& train, const data::Dataset& val, const config::Config& config) {
  const std::string conflict = data::class_names_conflict(train.header(), val.header());
  if (conflict.empty()) return;
  DPUNET_FAIL("data.train (", config.data.train, ") names the classes ", data::class_names_text(train.header()),
              " but data.val (", config.data.val, ") names them ", data::class_names_text(val.header()), " (", conflict,
              "): validation would score each class against another's masks. Import both sets with one "
              "--class-names");
}

void check_statistics_fit(const config::Config& config, const data::ShardHeader& header, const std::string& which) {
  if (config.data.normalization != "dataset") return;
  DPUNET_CHECK(data::statistics_apply(normalizer(config), header.pixel_type), which, ": images are stored as ",
               data::pixel_type_name(header.pixel_type), ", but the normalisation statistics were measured on ",
               config.data.stats_pixel_type,
               " pixels (data.stats_pixel_type: the training shards' type when the run started): store the sets "
               "alike, or give statistics of ",
               data::pixel_type_name(header.pixel_type), " pixels");
}

std::string large_sample_note(const config::Config& config, const data::ShardHeader& train) {
  // 512 MiB in memory: a 5800x5800 RGB image, 9500x9500 grey.
  constexpr int64_t kLargeSampleBytes = int64_t{512} << 20;
  const int64_t bytes = data::sample_load_bytes(train), patch = config.augment.patch_size;
  // Whole-image training (patch 0) loads whole samples by design.
  if (patch <= 0 || bytes < kLargeSampleBytes || train.pixels() < 16 * patch * patch) return "";
  return "the training samples are " + std::to_string(train.height) + "x" + std::to_string(train.width) +
         " and every " + std::to_string(patch) + "x" + std::to_string(patch) + " patch loads its sample whole (" +
         mebibytes(bytes) + " in each of a rank's " + counted(config.data.workers, "loader thread") +
         "): images imported in tiles (dpunet data import --tile T) load faster, in less memory";
}

std::vector<std::string> constant_channel_notes(const config::Config& config) {
  std::vector<std::string> notes;
  if (config.data.normalization != "dataset") return notes;
  for (size_t c = 0; c < config.data.channel_std.size(); ++c) {
    if (config.data.channel_std[c] >= data::kConstantChannelStd) continue;
    char std_text[32];
    std::snprintf(std_text, sizeof(std_text), "%g", config.data.channel_std[c]);
    notes.push_back("channel " + std::to_string(c) + " has std " + std_text + " (constant in " + config.data.train +
                    "?): it is centred but not scaled, so it carries no information to the model");
  }
  return notes;
}

}  // namespace dpunet::train
