// Pixel types and layout descriptions of the shard format.
#include "data/shard_format.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace dpunet::data {

const char* pixel_type_name(PixelType type) {
  switch (type) {
    case PixelType::kUInt8: return "uint8";
    case PixelType::kUInt16: return "uint16";
    case PixelType::kFloat32: return "float32";
  }
  return "?";
}

PixelType parse_pixel_type(const std::string& name) {
  if (name == "uint8") return PixelType::kUInt8;
  if (name == "uint16") return PixelType::kUInt16;
  if (name == "float32") return PixelType::kFloat32;
  DPUNET_FAIL("unknown pixel type '", name, "' (expected uint8, uint16 or float32)");
}

void check_sample_size(const ShardHeader& header, const std::string& path) {
  const double sample_gib = static_cast<double>(header.channels) * static_cast<double>(header.height) *
                            static_cast<double>(header.width) * pixel_type_bytes(header.pixel_type) /
                            static_cast<double>(int64_t{1} << 30);
  DPUNET_CHECK(sample_gib < 4.0, path, ": one sample of ", header.channels, " x ", header.height, " x ", header.width,
               " ", pixel_type_name(header.pixel_type), " is ", sample_gib,
               " GiB; a shard stores each sample as one HDF5 chunk, which must stay below 4 GiB: cut the images "
               "into tiles first (dpunet data import --tile)");
}

int pixel_type_bytes(PixelType type) {
  switch (type) {
    case PixelType::kUInt8: return 1;
    case PixelType::kUInt16: return 2;
    case PixelType::kFloat32: return 4;
  }
  return 0;
}

std::string describe_layout(const ShardHeader& h) {
  return ::dpunet::detail::concat("C=", h.channels, " H=", h.height, " W=", h.width, " ", pixel_type_name(h.pixel_type),
                                  " n_classes=", h.n_classes,
                                  h.ignore_label >= 0 ? " ignore_label=" + std::to_string(h.ignore_label) : "");
}

bool same_layout(const ShardHeader& a, const ShardHeader& b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width && a.pixel_type == b.pixel_type &&
         a.n_classes == b.n_classes && (a.ignore_label == b.ignore_label || a.ignore_label < 0 || b.ignore_label < 0);
}

std::vector<std::string> given_class_names(const ShardHeader& header) {
  for (size_t k = 0; k < header.class_names.size(); ++k) {
    if (header.class_names[k] != "class" + std::to_string(k)) return header.class_names;
  }
  return {};
}

std::string class_names_text(const ShardHeader& header) {
  std::string text;
  for (const std::string& name : header.class_names) text += (text.empty() ? "" : ",") + name;
  return text;
}

std::string class_names_conflict(const ShardHeader& a, const ShardHeader& b) {
  const std::vector<std::string> first = given_class_names(a), second = given_class_names(b);
  if (first.empty() || second.empty()) return "";
  for (size_t k = 0; k < std::min(first.size(), second.size()); ++k) {
    if (first[k] != second[k]) {
      return ::dpunet::detail::concat("class ", k, " is '", first[k], "' in one and '", second[k], "' in the other");
    }
  }
  if (first.size() != second.size())
    return ::dpunet::detail::concat(first.size(), " class names against ", second.size());
  return "";
}

std::string invalid_mask_value(const ShardHeader& h, uint8_t value) {
  if (h.valid_mask_value(value)) return "";
  return ::dpunet::detail::concat(
      "mask label ", int(value), " >= n_classes ", h.n_classes,
      h.ignore_label >= 0 ? " and not the ignore label " + std::to_string(h.ignore_label) : std::string());
}

std::string find_non_finite(const ShardHeader& h, const void* image) {
  if (h.pixel_type != PixelType::kFloat32) return "";
  const auto* values = static_cast<const float*>(image);
  for (int64_t i = 0; i < h.image_values(); ++i) {
    if (std::isfinite(values[i])) continue;
    const int64_t pixel = i % h.pixels();
    return "channel " + std::to_string(i / h.pixels()) + ", pixel (" + std::to_string(pixel / h.width) + ", " +
           std::to_string(pixel % h.width) + ") is " + (std::isnan(values[i]) ? "nan" : "inf");
  }
  return "";
}

}  // namespace dpunet::data
