// Cross-key validation: contradictions a single key cannot show.
#include "config/validate.h"

#include <algorithm>

#include "common/error.h"
#include "model/unet_options.h"

namespace dpunet::config {
namespace {

// Errors naming `keys` ("a.b, c.d") after the place of a --set among them, else of the
// first set in the file, else the file.
class KeyErrors {
 public:
  KeyErrors(const std::string& source, const Origins& origins) : source_(source), origins_(origins) {}

  [[noreturn]] void fail(const std::string& keys, const std::string& message) const {
    throw Error(place(keys) + ": " + keys + ": " + message);
  }

 private:
  std::string place(const std::string& keys) const {
    std::string in_file;
    for (size_t at = 0; at < keys.size();) {
      const size_t comma = keys.find(", ", at);
      const auto origin = origins_.find(keys.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
      if (origin != origins_.end() && origin->second.rfind("--set ", 0) == 0) return origin->second;
      if (origin != origins_.end() && in_file.empty()) in_file = origin->second;
      at = comma == std::string::npos ? keys.size() : comma + 2;
    }
    return in_file.empty() ? source_ : in_file;
  }

  const std::string& source_;
  const Origins& origins_;
};

// The normalisation statistics: what a model's inputs are scaled by, in training and
// in prediction alike.
void check_statistics(const Config& c, const KeyErrors& errors) {
  auto fail = [&](const std::string& keys, const std::string& message) { errors.fail(keys, message); };
  if (c.data.channel_mean.size() != c.data.channel_std.size()) {
    fail("data.channel_mean, data.channel_std", "give both or neither, one value per channel");
  }
  if (!c.data.channel_mean.empty() && static_cast<int64_t>(c.data.channel_mean.size()) != c.model.n_channels) {
    fail("data.channel_mean, model.n_channels",
         detail::concat(c.data.channel_mean.size(), " values for ", c.model.n_channels, " channels"));
  }
  const std::string& units = c.data.stats_pixel_type;
  if (!units.empty() && units != "uint8" && units != "uint16" && units != "float32") {
    fail("data.stats_pixel_type", "must be uint8, uint16, float32 or empty; got '" + units + "'");
  }
  // It describes the statistics given with it; alone it would be replaced by the
  // training shards' type without a word.
  if (!units.empty() && c.data.channel_mean.empty()) {
    fail("data.stats_pixel_type, data.channel_mean",
         "stats_pixel_type describes channel_mean and channel_std: give them too, or leave it empty");
  }
  // Only dataset normalisation reads them: statistics given beside another would be
  // ignored without a word.
  if (!c.data.channel_mean.empty() && c.data.normalization != "dataset") {
    fail("data.channel_mean, data.normalization",
         "channel_mean and channel_std are dataset normalisation's; data.normalization is " + c.data.normalization +
             ", which would ignore them: set it to dataset, or leave the statistics out");
  }
}

}  // namespace

void validate_model_description(const Config& c, const std::string& source, const Origins& origins) {
  check_statistics(c, KeyErrors(source, origins));
}

void validate(const Config& c, const std::string& source, const Origins& origins) {
  const KeyErrors errors(source, origins);
  auto fail = [&](const std::string& keys, const std::string& message) { errors.fail(keys, message); };
  if (c.run.dir.empty()) fail("run.dir", "is empty; name the folder the run writes into");
  if (c.augment.scale_min > c.augment.scale_max) {
    fail("augment.scale_min, augment.scale_max", "scale_min must not exceed scale_max");
  }
  if (c.augment.gamma_min > c.augment.gamma_max) {
    fail("augment.gamma_min, augment.gamma_max", "gamma_min must not exceed gamma_max");
  }
  if (c.augment.blur_sigma_min > c.augment.blur_sigma_max) {
    fail("augment.blur_sigma_min, augment.blur_sigma_max", "blur_sigma_min must not exceed blur_sigma_max");
  }
  if (!c.loss.class_weights.empty() && static_cast<int64_t>(c.loss.class_weights.size()) != c.model.n_classes) {
    fail("loss.class_weights, model.n_classes",
         detail::concat(c.loss.class_weights.size(), " weights for ", c.model.n_classes, " classes"));
  }
  if (c.loss.ce_weight == 0 && c.loss.dice_weight == 0) fail("loss.ce_weight, loss.dice_weight", "both are 0");
  const bool any_class_weight =
      std::any_of(c.loss.class_weights.begin(), c.loss.class_weights.end(), [](double w) { return w > 0; });
  if (!c.loss.class_weights.empty() && !any_class_weight && c.loss.ce_weight > 0) {
    fail("loss.class_weights", "every weight is 0, so the cross-entropy would learn nothing; give one above 0");
  }
  // Every schedule scales the peak: at 0 the run would train nothing, for all its steps.
  if (c.optimizer.lr <= 0) fail("optimizer.lr", "must be above 0; at 0 no weight would change");
  // Each step multiplies every weight by 1 - lr x weight_decay (AdamW's decoupled decay;
  // SGD's through its gradient): at 1 they are zeroed, above it their signs flip.
  if (c.optimizer.lr * c.optimizer.weight_decay >= 1) {
    fail("optimizer.lr, optimizer.weight_decay",
         detail::concat("lr x weight_decay is ", c.optimizer.lr * c.optimizer.weight_decay,
                        ": each step would multiply every weight by 1 - that, zeroing them or flipping their signs; "
                        "weight decay is a small fraction (AdamW: 0.01 to 0.1, with lr 1e-4 to 1e-3)"));
  }
  // Adam divides by sqrt(v) + eps, and v is 0 for a parameter that never had a gradient.
  if (c.optimizer.name == "adamw" && c.optimizer.eps <= 0) fail("optimizer.eps", "must be above 0 for adamw");
  if (c.optimizer.name == "sgd" && c.optimizer.momentum <= 0) {
    fail("optimizer.momentum, optimizer.name", "sgd uses Nesterov momentum, which must be above 0 (nnU-Net: 0.99)");
  }
  // The decaying schedules end at lr_min; constant has no end to set, and would ignore it.
  if (c.schedule.name == "constant" && c.schedule.lr_min > 0) {
    fail("schedule.lr_min, schedule.name",
         "lr_min is where cosine and poly decay to; the constant schedule would ignore it: leave it 0, or name "
         "cosine or poly");
  }
  if (c.schedule.lr_min > c.optimizer.lr) {
    fail("schedule.lr_min, optimizer.lr",
         detail::concat("the schedule's floor (", c.schedule.lr_min, ") is above the peak (", c.optimizer.lr, ")"));
  }
  if (c.distributed.backend == "nccl" && c.run.device == "cpu") {
    fail("distributed.backend, run.device", "nccl needs CUDA; use mpi or auto on CPU");
  }
  if (c.distributed.backend == "mpi" && c.run.device == "cuda") {
    fail("distributed.backend, run.device", "the mpi backend reduces CPU tensors; use nccl or auto with CUDA");
  }
  if (c.schedule.warmup_steps >= c.train.steps && c.schedule.warmup_steps > 0) {
    fail("schedule.warmup_steps, train.steps",
         detail::concat("warmup (", c.schedule.warmup_steps, ") must be shorter than the run (", c.train.steps, ")"));
  }
  if (c.precision.dtype != "fp32" && c.run.device == "cpu") {
    fail("precision.dtype, run.device", "bf16/fp16 autocast needs CUDA; use fp32 on CPU");
  }
  if (c.data.train.empty()) fail("data.train", "no training data given");
  check_statistics(c, errors);

  model::UnetOptions unet;
  unet.depth = c.model.depth;
  unet.padding = model::parse_padding(c.model.padding);
  unet.base_channels = c.model.base_channels;
  unet.bilinear = c.model.bilinear;  // its bottom block is half as wide (the GroupNorm check)
  if (c.augment.patch_size > 0 && !model::output_size(unet, c.augment.patch_size)) {
    std::string sizes;
    for (int64_t s : model::nearest_valid_sizes(unet, c.augment.patch_size)) {
      sizes += (sizes.empty() ? "" : " or ") + std::to_string(s);
    }
    fail("augment.patch_size, model.padding, model.depth",
         detail::concat("a ", c.augment.patch_size, " px patch cannot be tiled by a depth-", c.model.depth, " ",
                        c.model.padding, "-padded U-Net; nearest valid sizes: ", sizes));
  }
  // A small patch at the bottom of a deep U-Net: a raw ATen error at the first step
  // (BatchNorm), or a map zeroed without a word (InstanceNorm).
  unet.norm = model::parse_norm(c.model.norm);
  if (c.augment.patch_size > 0) {
    const std::string problem =
        model::bottom_norm_problem(unet, c.augment.patch_size, c.augment.patch_size,
                                   // SyncBatchNorm's batch spans the ranks: checked once they are known
                                   // (train::check_sync_batch_norm).
                                   unet.norm == model::Norm::kSyncBatch ? 0 : c.train.batch_size);
    if (!problem.empty()) {
      const bool batch = unet.norm == model::Norm::kBatch, group = unet.norm == model::Norm::kGroup;
      fail(batch   ? "model.norm, train.batch_size, augment.patch_size, model.depth"
           : group ? "model.norm, model.base_channels, augment.patch_size, model.depth"
                   : "model.norm, augment.patch_size, model.depth",
           detail::concat("with ", c.augment.patch_size, " px patches ", problem, ": use a larger ",
                          batch   ? "batch or patch"
                          : group ? "patch or model.base_channels"
                                  : "patch",
                          ", a smaller depth, or norm ", group ? "batch" : "group"));
    }
  }
  if (c.augment.patch_size == 0 && c.model.padding == "valid") {
    fail("augment.patch_size, model.padding", "valid padding needs an explicit patch size");
  }
}

}  // namespace dpunet::config
