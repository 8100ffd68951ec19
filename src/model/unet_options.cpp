// Parsing, validation and size arithmetic for UnetOptions.
#include "model/unet_options.h"

#include "common/error.h"

#include <algorithm>
#include <numeric>

namespace dpunet::model {

Norm parse_norm(const std::string& name) {
  if (name == "batch") return Norm::kBatch;
  if (name == "instance") return Norm::kInstance;
  if (name == "group") return Norm::kGroup;
  if (name == "none") return Norm::kNone;
  if (name == "sync_batch") return Norm::kSyncBatch;
  DPUNET_FAIL("unknown norm '", name, "': expected batch, instance, group, none or sync_batch");
}

Padding parse_padding(const std::string& name) {
  if (name == "same") return Padding::kSame;
  if (name == "valid") return Padding::kValid;
  DPUNET_FAIL("unknown padding '", name, "': expected same or valid");
}

std::string to_string(Norm norm) {
  switch (norm) {
    case Norm::kBatch: return "batch";
    case Norm::kInstance: return "instance";
    case Norm::kGroup: return "group";
    case Norm::kNone: return "none";
    case Norm::kSyncBatch: return "sync_batch";
  }
  return "?";
}

std::string to_string(Padding padding) {
  return padding == Padding::kSame ? "same" : "valid";
}

void validate(const UnetOptions& o) {
  DPUNET_CHECK(o.n_channels > 0, "Unet: n_channels must be > 0, got ", o.n_channels);
  DPUNET_CHECK(o.n_classes > 0, "Unet: n_classes must be > 0, got ", o.n_classes);
  DPUNET_CHECK(o.norm != Norm::kSyncBatch || o.communicator != nullptr,
               "Unet: norm sync_batch needs a communicator (it is for distributed runs)");
  DPUNET_CHECK(o.depth >= 1 && o.depth <= 8, "Unet: depth must be in [1, 8], got ", o.depth);
  // Any width: the bilinear decoder halves widths of level 1 and deeper (base * 2^i), never the
  // first level's.
  // At most the config's bound: the deepest level's width, base * 2^depth, must stay far
  // from overflowing the shifts that compute it.
  DPUNET_CHECK(o.base_channels >= 1 && o.base_channels <= 4096, "Unet: base_channels must be in [1, 4096], got ",
               o.base_channels);
}

std::optional<int64_t> output_size(const UnetOptions& o, int64_t size) {
  if (size <= 0) return std::nullopt;
  if (o.padding == Padding::kSame) {
    // Pooling floors odd sizes; the decoder pads back up. Only an empty map is fatal.
    int64_t bottom = size;
    for (int64_t level = 0; level < o.depth; ++level) {
      bottom /= 2;
      if (bottom == 0) return std::nullopt;
    }
    return size;
  }
  constexpr int64_t kShrink = 4;  // two unpadded 3x3 convolutions per DoubleConv
  for (int64_t level = 0; level < o.depth; ++level) {
    size -= kShrink;
    if (size <= 0 || size % 2 != 0) return std::nullopt;
    size /= 2;
  }
  size -= kShrink;
  for (int64_t level = 0; level < o.depth; ++level) {
    if (size <= 0) return std::nullopt;
    size = size * 2 - kShrink;
  }
  if (size <= 0) return std::nullopt;
  return size;
}

std::optional<int64_t> bottom_size(const UnetOptions& o, int64_t size) {
  if (!output_size(o, size)) return std::nullopt;
  // Same padding keeps a level's size through its convolutions; valid padding loses
  // two pixels a side to each DoubleConv.
  const int64_t shrink = o.padding == Padding::kSame ? 0 : 4;
  for (int64_t level = 0; level < o.depth; ++level) size = (size - shrink) / 2;
  return size - shrink;
}

std::string bottom_norm_problem(const UnetOptions& o, int64_t height, int64_t width, int64_t training_batch) {
  const auto bottom_h = bottom_size(o, height), bottom_w = bottom_size(o, width);
  if (!bottom_h || !bottom_w) return "";
  const int64_t values = *bottom_h * *bottom_w;
  const std::string map = "the depth-" + std::to_string(o.depth) + " U-Net's bottom map is " +
                          std::to_string(*bottom_h) + "x" + std::to_string(*bottom_w);
  if ((o.norm == Norm::kBatch || o.norm == Norm::kSyncBatch) && training_batch > 0 && training_batch * values < 2) {
    return map + ", which leaves " + (o.norm == Norm::kBatch ? "BatchNorm" : "SyncBatchNorm") +
           " one value per channel to normalise in a batch of " + std::to_string(training_batch) +
           (o.norm == Norm::kBatch ? "" : " over all ranks");
  }
  if (o.norm == Norm::kInstance && values == 1) return map + ", which InstanceNorm would zero whatever it held";
  if (o.norm == Norm::kGroup) {
    const int64_t channels = (o.base_channels << o.depth) / (o.bilinear ? 2 : 1);  // the bottom block's width
    if (values * (channels / group_norm_groups(channels)) == 1) {
      return map + " with one channel in each of GroupNorm's " + std::to_string(group_norm_groups(channels)) +
             " groups, which it would zero whatever it held";
    }
  }
  return "";
}

int64_t group_norm_groups(int64_t channels) {
  return std::gcd<int64_t>(channels, 32);
}

int64_t context_margin(const UnetOptions& o) {
  if (o.padding == Padding::kSame) return 0;
  // Two unpadded 3x3 convolutions lose 2 pixels per side at every level, and a level
  // 2^l coarser loses 2^l times as many input pixels: 2 * 2^l per side for each of the
  // depth encoder levels, the bottom and the depth decoder levels.
  const int64_t bottom = int64_t{1} << o.depth;
  return 2 * ((bottom - 1) + bottom + (bottom - 1));
}

std::vector<int64_t> nearest_valid_sizes(const UnetOptions& o, int64_t size) {
  std::vector<int64_t> found;
  // Valid sizes repeat with period 2^depth above the smallest one, which is below 2^(depth+4).
  const int64_t span = int64_t{1} << (o.depth + 4);
  for (int64_t s = size - 1; s > 0 && s >= size - span; --s) {
    if (output_size(o, s)) {
      found.push_back(s);
      break;
    }
  }
  for (int64_t s = std::max<int64_t>(size + 1, 1); s <= std::max<int64_t>(size, 0) + span; ++s) {
    if (output_size(o, s)) {
      found.push_back(s);
      break;
    }
  }
  return found;
}

int64_t output_size_or_fail(const UnetOptions& options, int64_t input_size, const std::string& option) {
  const auto output = output_size(options, input_size);
  if (output) return *output;
  std::string sizes;
  for (int64_t s : nearest_valid_sizes(options, input_size)) sizes += (sizes.empty() ? "" : " or ") + std::to_string(s);
  DPUNET_FAIL(option, " does not suit this model (", to_string(options.padding), " padding, depth ", options.depth,
              "); nearest valid sizes: ", sizes);
}

}  // namespace dpunet::model
