// The schema table. Each entry binds a key path to a Config member and its constraints.
#include "config/fields.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace dpunet::config {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Errors raised while reading one value; load_config adds file, line, column and key.
struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string scalar_text(const YAML::Node& node) {
  if (node.IsNull()) return "nothing";
  if (!node.IsScalar()) return node.IsSequence() ? "a list" : "a mapping";
  return "'" + node.Scalar() + "'";
}

// The shortest decimal that reads back as exactly `value`: 0.9, not 0.90000000000000002;
// whole numbers as written (600, not %g's 6e+02).
YAML::Node shortest_decimal(double value) {
  if (!std::isfinite(value)) return YAML::Node(value);
  char text[32];
  // Up to 2^53, where doubles stop holding every whole number ("1000000000000000" as a
  // bound, not "1e+15").
  if (value == std::trunc(value) && std::fabs(value) <= 9007199254740992.0) {
    std::snprintf(text, sizeof(text), "%.0f", value);
    return YAML::Node(std::string(text));
  }
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return YAML::Node(std::string(text));
}

double read_number(const YAML::Node& node, double low, double high, bool integer) {
  const char* expected = integer ? "an integer" : "a number";
  if (!node.IsScalar()) throw ValueError(std::string("expected ") + expected + ", got " + scalar_text(node));
  double value = 0;
  try {
    value = node.as<double>();
  } catch (const YAML::Exception&) {
    throw ValueError(std::string("expected ") + expected + ", got " + scalar_text(node));
  }
  if (!std::isfinite(value)) throw ValueError(std::string("expected a finite number, got ") + scalar_text(node));
  if (integer && std::floor(value) != value) throw ValueError("expected an integer, got " + scalar_text(node));
  if (!(value >= low && value <= high)) {
    std::ostringstream range;
    // Bounds as exact as the value: [1, 1048576], not %g's [1, 1.04858e+06].
    const auto bound = [](double b) {
      return std::isfinite(b) ? shortest_decimal(b).Scalar() : b > 0 ? "inf" : "-inf";
    };
    range << "must be in [" << bound(low) << ", " << bound(high) << "], got " << node.Scalar();
    throw ValueError(range.str());
  }
  return value;
}

template <typename Get>
Field real(const std::string& path, Get get, double low = -kInf, double high = kInf) {
  return {path, [=](Config& c, const YAML::Node& n) { get(c) = read_number(n, low, high, false); },
          [=](const Config& c) { return shortest_decimal(get(const_cast<Config&>(c))); }};
}

template <typename Get>
Field integer(const std::string& path, Get get, double low, double high = 1e15) {
  return {path,
          [=](Config& c, const YAML::Node& n) {
            get(c) = static_cast<std::decay_t<decltype(get(c))>>(read_number(n, low, high, true));
          },
          [=](const Config& c) { return YAML::Node(get(const_cast<Config&>(c))); }};
}

// A whole number in [0, 2^64): seeds, which a double would round past 2^53
// (`--set run.seed=$(date +%s%N)`).
template <typename Get>
Field unsigned_integer(const std::string& path, Get get) {
  return {path,
          [=](Config& c, const YAML::Node& n) {
            const std::string text = n.IsScalar() ? n.Scalar() : "";
            const bool digits = !text.empty() && text.size() <= 20 &&
                                std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
            errno = 0;
            const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
            if (!digits || errno == ERANGE) {
              throw ValueError("expected a whole number from 0 to 18446744073709551615, got " + scalar_text(n));
            }
            get(c) = static_cast<uint64_t>(value);
          },
          [=](const Config& c) { return YAML::Node(std::to_string(get(const_cast<Config&>(c)))); }};
}

template <typename Get>
Field boolean(const std::string& path, Get get) {
  return {path,
          [=](Config& c, const YAML::Node& n) {
            bool value = false;
            if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
              throw ValueError("expected true or false, got " + scalar_text(n));
            }
            get(c) = value;
          },
          [=](const Config& c) { return YAML::Node(get(const_cast<Config&>(c))); }};
}

template <typename Get>
Field text(const std::string& path, Get get, std::vector<std::string> choices = {}) {
  return {path,
          [=](Config& c, const YAML::Node& n) {
            if (!n.IsScalar() && !n.IsNull()) throw ValueError("expected a string, got " + scalar_text(n));
            const std::string value = n.IsNull() ? "" : n.Scalar();
            // `val: false` (or no, off) reads as "none" to a person and as a folder named
            // "false" to the parser; a plain (unquoted) boolean in a file is refused.
            bool flag = false;
            if (choices.empty() && n.IsScalar() && n.Tag() == "?" && YAML::convert<bool>::decode(n, flag)) {
              throw ValueError("expected a path or a name, got the YAML boolean " + scalar_text(n) +
                               "; leave the value empty for none, or quote it if it is a name");
            }
            if (!choices.empty()) {
              bool known = false;
              std::string list;
              for (const auto& choice : choices) {
                known = known || choice == value;
                list += (list.empty() ? "" : ", ") + choice;
              }
              if (!known) throw ValueError("must be one of " + list + "; got '" + value + "'");
            }
            get(c) = value;
          },
          [=](const Config& c) { return YAML::Node(get(const_cast<Config&>(c))); },
          /*text=*/true};
}

template <typename Get>
Field reals(const std::string& path, Get get, double low, double high) {
  return {path,
          [=](Config& c, const YAML::Node& n) {
            if (!n.IsSequence() && !n.IsNull()) throw ValueError("expected a list of numbers, got " + scalar_text(n));
            std::vector<double> values;
            for (const auto& item : n) values.push_back(read_number(item, low, high, false));
            get(c) = values;
          },
          [=](const Config& c) {
            YAML::Node list(YAML::NodeType::Sequence);
            for (double v : get(const_cast<Config&>(c))) list.push_back(shortest_decimal(v));
            list.SetStyle(YAML::EmitterStyle::Flow);
            return list;
          }};
}

#define AT(member)          \
  [](Config & c) -> auto& { \
    return c.member;        \
  }

std::vector<Field> build() {
  return {
      text("run.dir", AT(run.dir)),
      unsigned_integer("run.seed", AT(run.seed)),
      text("run.device", AT(run.device), {"auto", "cpu", "cuda"}),

      integer("model.n_channels", AT(model.n_channels), 1, 4096),
      integer("model.n_classes", AT(model.n_classes), 2, 256),
      boolean("model.bilinear", AT(model.bilinear)),
      integer("model.base_channels", AT(model.base_channels), 1, 4096),
      integer("model.depth", AT(model.depth), 1, 8),
      text("model.norm", AT(model.norm), {"batch", "instance", "group", "none", "sync_batch"}),
      text("model.padding", AT(model.padding), {"same", "valid"}),
      text("model.checkpointing", AT(model.checkpointing), {"none", "norm_relu", "balanced", "min_memory", "all"}),
      text("model.split_skip_conv", AT(model.split_skip_conv), {"auto", "true", "false"}),
      boolean("model.fuse_norm_relu", AT(model.fuse_norm_relu)),
      boolean("model.pool_concat_kernels", AT(model.pool_concat_kernels)),

      text("data.train", AT(data.train)),
      text("data.val", AT(data.val)),
      text("data.normalization", AT(data.normalization), {"dataset", "per_image", "none"}),
      reals("data.channel_mean", AT(data.channel_mean), -1e30, 1e30),
      reals("data.channel_std", AT(data.channel_std), 0, 1e30),
      text("data.stats_pixel_type", AT(data.stats_pixel_type)),
      integer("data.workers", AT(data.workers), 1, 64),
      integer("data.prefetch", AT(data.prefetch), 1, 256),
      text("data.remainder", AT(data.remainder), {"pad", "drop"}),

      boolean("augment.enabled", AT(augment.enabled)),
      integer("augment.patch_size", AT(augment.patch_size), 0, 65536),
      real("augment.flip", AT(augment.flip), 0, 1),
      real("augment.rotate90", AT(augment.rotate90), 0, 1),
      real("augment.affine", AT(augment.affine), 0, 1),
      real("augment.max_rotation_degrees", AT(augment.max_rotation_degrees), 0, 180),
      real("augment.scale_min", AT(augment.scale_min), 0.01, 100),
      real("augment.scale_max", AT(augment.scale_max), 0.01, 100),
      real("augment.elastic", AT(augment.elastic), 0, 1),
      integer("augment.elastic_grid", AT(augment.elastic_grid), 2, 64),
      real("augment.elastic_sigma", AT(augment.elastic_sigma), 0, 1000),
      real("augment.brightness", AT(augment.brightness), 0, 1),
      real("augment.brightness_range", AT(augment.brightness_range), 0, 0.99),
      real("augment.contrast", AT(augment.contrast), 0, 1),
      real("augment.contrast_range", AT(augment.contrast_range), 0, 0.99),
      real("augment.gamma", AT(augment.gamma), 0, 1),
      real("augment.gamma_invert", AT(augment.gamma_invert), 0, 1),
      real("augment.gamma_min", AT(augment.gamma_min), 0.01, 10),
      real("augment.gamma_max", AT(augment.gamma_max), 0.01, 10),
      real("augment.noise", AT(augment.noise), 0, 1),
      real("augment.noise_std", AT(augment.noise_std), 0, 100),
      real("augment.blur", AT(augment.blur), 0, 1),
      real("augment.blur_sigma_min", AT(augment.blur_sigma_min), 0.01, 100),
      real("augment.blur_sigma_max", AT(augment.blur_sigma_max), 0.01, 100),
      real("augment.low_resolution", AT(augment.low_resolution), 0, 1),
      real("augment.low_resolution_min", AT(augment.low_resolution_min), 0.01, 1),
      real("augment.foreground", AT(augment.foreground), 0, 1),

      integer("train.batch_size", AT(train.batch_size), 1, 1 << 20),
      integer("train.accumulation", AT(train.accumulation), 1, 1 << 20),
      integer("train.steps", AT(train.steps), 1),

      text("optimizer.name", AT(optimizer.name), {"adamw", "sgd"}),
      text("optimizer.implementation", AT(optimizer.implementation), {"fused", "foreach", "per_parameter"}),
      real("optimizer.lr", AT(optimizer.lr), 0, 10),
      real("optimizer.weight_decay", AT(optimizer.weight_decay), 0, 10),
      real("optimizer.beta1", AT(optimizer.beta1), 0, 0.999999),
      real("optimizer.beta2", AT(optimizer.beta2), 0, 0.999999),
      real("optimizer.eps", AT(optimizer.eps), 0, 1),
      real("optimizer.momentum", AT(optimizer.momentum), 0, 0.999999),
      real("optimizer.grad_clip", AT(optimizer.grad_clip), 0),

      text("schedule.name", AT(schedule.name), {"cosine", "poly", "constant"}),
      integer("schedule.warmup_steps", AT(schedule.warmup_steps), 0),
      real("schedule.lr_min", AT(schedule.lr_min), 0, 10),
      real("schedule.poly_exponent", AT(schedule.poly_exponent), 0, 100),

      real("loss.ce_weight", AT(loss.ce_weight), 0),
      real("loss.dice_weight", AT(loss.dice_weight), 0),
      reals("loss.class_weights", AT(loss.class_weights), 0, 1e6),
      boolean("loss.dice_include_background", AT(loss.dice_include_background)),
      boolean("loss.global_batch", AT(loss.global_batch)),

      text("precision.dtype", AT(precision.dtype), {"fp32", "bf16", "fp16"}),
      boolean("precision.channels_last", AT(precision.channels_last)),
      boolean("precision.cudnn_benchmark", AT(precision.cudnn_benchmark)),
      boolean("precision.deterministic", AT(precision.deterministic)),

      integer("validation.every_steps", AT(validation.every_steps), 0),
      integer("validation.batch_size", AT(validation.batch_size), 1, 1 << 20),

      integer("checkpoint.every_steps", AT(checkpoint.every_steps), 0),
      boolean("checkpoint.every_epoch", AT(checkpoint.every_epoch)),
      integer("checkpoint.keep_last", AT(checkpoint.keep_last), 1, 1000),
      boolean("checkpoint.keep_best", AT(checkpoint.keep_best)),

      integer("logging.every_steps", AT(logging.every_steps), 1),
      text("logging.progress", AT(logging.progress), {"auto", "bar", "lines"}),
      boolean("logging.tensorboard", AT(logging.tensorboard)),

      text("distributed.backend", AT(distributed.backend), {"auto", "mpi", "nccl"}),
      real("distributed.first_bucket_mb", AT(distributed.first_bucket_mb), 0.001, 4096),
      real("distributed.bucket_mb", AT(distributed.bucket_mb), 0.001, 4096),
      text("distributed.wire_dtype", AT(distributed.wire_dtype), {"none", "bf16", "fp16"}),
      real("distributed.timeout_s", AT(distributed.timeout_s), 1, 1e7),
      boolean("distributed.check_collectives", AT(distributed.check_collectives)),
  };
}

#undef AT

}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> table = build();
  return table;
}

std::vector<std::string> sections() {
  std::vector<std::string> names;
  for (const Field& f : fields()) {
    const std::string section = f.path.substr(0, f.path.find('.'));
    if (names.empty() || names.back() != section) names.push_back(section);
  }
  return names;
}

}  // namespace dpunet::config
