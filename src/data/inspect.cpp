// Dataset inspection and verification.
#include "data/inspect.h"

#include <algorithm>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/text.h"
#include "data/dataset.h"
#include "data/h5_attributes.h"

namespace dpunet::data {

namespace {

// With verify, a shard that cannot be opened (truncated, not HDF5, unreadable) or whose
// layout or class names differ from the others' (another image size, channel count, pixel
// type or classes: a stray shard of another dataset) is listed as BAD and the others are
// still read: one run lists every bad shard of hundreds. The layout most shards share (the
// first one's among equals) is the dataset's.
std::unique_ptr<Dataset> open_dataset(const std::string& spec, bool verify, std::ostream& out, int64_t& bad_shards) {
  if (!verify) return std::make_unique<Dataset>(spec);
  std::vector<std::string> readable;
  std::vector<ShardHeader> headers;
  for (const std::string& path : resolve_shards(spec)) {
    try {
      require_listed_shard(path, spec);
      ShardReader probe(path);
      readable.push_back(path);
      headers.push_back(probe.header());
    } catch (const Error& e) {
      ++bad_shards;
      out << "BAD " << e.what() << "\n";
    }
  }
  if (readable.empty()) return nullptr;
  const auto sharing = [&](const ShardHeader& layout) {
    return std::count_if(headers.begin(), headers.end(), [&](const ShardHeader& h) { return same_layout(h, layout); });
  };
  size_t common = 0;
  for (size_t i = 1; i < headers.size(); ++i) {
    if (sharing(headers[i]) > sharing(headers[common])) common = i;
  }
  // A shard without an ignore label agrees with any, but two shards with different ones
  // disagree: of those that agree with that layout, the label most of them carry is the
  // dataset's.
  ShardHeader layout = headers[common];
  std::map<int, int64_t> labels;
  for (const ShardHeader& h : headers) {
    if (same_layout(h, layout) && h.ignore_label >= 0) ++labels[h.ignore_label];
  }
  for (const auto& [label, count] : labels) {
    if (layout.ignore_label < 0 || count > labels.at(layout.ignore_label)) layout.ignore_label = label;
  }
  // Likewise class names: shards with the defaults agree with any, and of the names given,
  // those most shards of the layout carry are the dataset's.
  std::map<std::vector<std::string>, int64_t> names;
  for (const ShardHeader& h : headers) {
    if (same_layout(h, layout) && !given_class_names(h).empty()) ++names[h.class_names];
  }
  for (const auto& [given, count] : names) {
    if (given_class_names(layout).empty() || count > names.at(layout.class_names)) layout.class_names = given;
  }
  const auto others = sharing(layout);
  std::vector<std::string> agreeing;
  for (size_t i = 0; i < readable.size(); ++i) {
    const std::string conflict = class_names_conflict(headers[i], layout);
    if (same_layout(headers[i], layout) && conflict.empty()) {
      agreeing.push_back(readable[i]);
      continue;
    }
    ++bad_shards;
    out << "BAD " << readable[i] << ": ";
    if (!same_layout(headers[i], layout)) {
      out << describe_layout(headers[i]) << ", unlike the " << others << " shard(s) of " << describe_layout(layout)
          << " (" << readable[common] << ", ...)\n";
    } else {
      out << "classes " << class_names_text(headers[i]) << ", unlike the " << names.at(layout.class_names)
          << " shard(s) naming them " << class_names_text(layout) << " (" << conflict << ")\n";
    }
  }
  return std::make_unique<Dataset>(agreeing);
}

}  // namespace

InspectResult inspect_dataset(const std::string& spec, const InspectOptions& options, std::ostream& out) {
  InspectResult result;
  const std::unique_ptr<Dataset> opened = open_dataset(spec, options.verify, out, result.bad_shards);
  if (!opened) {
    out << "verify: no shard of " << spec << " could be opened\n";
    return result;
  }
  const Dataset& dataset = *opened;
  const ShardHeader& h = dataset.header();
  out << "dataset " << spec << ": " << counted(h.samples, "sample") << " in "
      << counted(dataset.shards().size(), "shard") << "\n";
  out << "images [N, C, H, W] = [" << h.samples << ", " << h.channels << ", " << h.height << ", " << h.width << "] "
      << pixel_type_name(h.pixel_type) << "; masks [N, H, W] uint8\n";
  out << "classes " << h.n_classes << ":";
  for (const std::string& name : h.class_names) out << " " << name;
  if (h.ignore_label >= 0) out << "; unlabelled pixels: mask value " << h.ignore_label << " (ignore label)";
  out << "\n";
  for (int64_t c = 0; c < h.channels; ++c) {
    out << "channel " << c << ": mean " << h.channel_mean[c] << ", std " << h.channel_std[c] << " (attributes)\n";
  }
  for (const auto& shard : dataset.shards()) {
    out << "  " << shard->path() << ": " << shard->header().samples << " samples, " << shard->storage()
        << (shard->source_statistics(0) != nullptr ? ", each sample's source image's statistics (per_image)" : "")
        << "\n";
  }

  // Rounded up: at most max_samples are read (30 samples and 16 asked for: every other one).
  const int64_t most = std::max<int64_t>(1, options.max_samples);
  const int64_t stride = options.verify ? 1 : std::max<int64_t>(1, (h.samples + most - 1) / most);
  std::vector<unsigned char> image(static_cast<size_t>(h.image_values()) * pixel_type_bytes(h.pixel_type));
  std::vector<uint8_t> mask(static_cast<size_t>(h.pixels()));
  std::vector<int64_t> class_pixels(256, 0);  // by mask value: the classes and the ignore label
  double low = std::numeric_limits<double>::max(), high = std::numeric_limits<double>::lowest();
  int64_t read = 0, bad = 0;
  for (int64_t i = 0; i < h.samples; i += stride) {
    try {
      dataset.read(i, image.data(), mask.data());
    } catch (const Error& e) {
      ++bad;
      out << "BAD " << e.what() << "\n";
      continue;
    }
    const std::string non_finite = find_non_finite(h, image.data());
    if (!non_finite.empty()) {
      ++bad;
      out << "BAD " << dataset.describe_image(i) << ": " << non_finite << "\n";
      continue;
    }
    ++read;
    for (uint8_t label : mask) ++class_pixels[label];
    for (int64_t v = 0; v < h.image_values(); ++v) {
      const double value = pixel_value(image.data(), h.pixel_type, v);
      low = std::min(low, value);
      high = std::max(high, value);
    }
  }
  int64_t total = 0;
  for (int64_t n : class_pixels) total += n;
  const auto share_text = [&](int64_t pixels) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(2)
         << (total > 0 ? 100.0 * static_cast<double>(pixels) / static_cast<double>(total) : 0.0) << "% of pixels";
    return text.str();
  };
  out << "statistics over " << read << " samples:\n";
  if (read > 0) out << "  pixel values in [" << low << ", " << high << "]\n";
  for (int c = 0; c < h.n_classes; ++c) {
    out << "  class " << c << " (" << h.class_names[c] << "): " << share_text(class_pixels[c]) << "\n";
  }
  if (h.ignore_label >= 0)
    out << "  unlabelled (" << h.ignore_label << "): " << share_text(class_pixels[h.ignore_label]) << "\n";
  if (options.verify) {
    out << "verify: " << read << " samples good, " << bad << " bad";
    if (result.bad_shards > 0)
      out << "; " << result.bad_shards << " shard(s) could not be opened or disagree with the others";
    out << "\n";
  }
  result.bad_samples = bad;
  return result;
}

}  // namespace dpunet::data
