// Mask values to class ids: --mask-map's grey values or #rrggbb colours, the keys of mask
// pixels, and the checks that keep one label from becoming several classes.
#include "data/mask_mapping.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>

#include "common/error.h"
#include "data/image_io.h"
#include "data/shard_format.h"

namespace dpunet::data {

std::string mask_key_text(uint32_t key, bool colour) {
  char text[16];
  std::snprintf(text, sizeof(text), colour ? "#%06x" : "%u", key);
  return text;
}

uint32_t mask_key(const Image& mask, int64_t pixel) {
  if (mask.channels == 1) return mask.values[pixel];
  const int shift = mask.bits == 16 ? 8 : 0;
  const uint16_t* v = mask.values.data() + pixel * mask.channels;
  return (uint32_t(v[0] >> shift) << 16) | (uint32_t(v[1] >> shift) << 8) | uint32_t(v[2] >> shift);
}

void ColourKeyCheck::check(const Image& mask, int64_t top) {
  if (mask.channels == 1 || mask.bits != 16) return;
  for (int64_t p = 0; p < mask.height * mask.width; ++p) {
    const uint16_t* v = mask.values.data() + p * mask.channels;
    const uint64_t colour = (uint64_t(v[0]) << 32) | (uint64_t(v[1]) << 16) | v[2];
    const auto [it, fresh] = colour_of_key_.emplace(mask_key(mask, p), colour);
    DPUNET_CHECK(fresh || it->second == colour, path_,
                 ": 16-bit colours that differ only in their low bytes (at pixel (", top + p / mask.width, ", ",
                 p % mask.width, ")) would become one class: colour masks are told apart by ",
                 "#rrggbb; save the mask as 8-bit colour or as grey class ids");
  }
}

namespace {

// `digits` read whole as a number in `base`, or none: no sign, no spaces, nothing after
// it (std::stoul takes "-1" and "255x" as numbers), and at most `max`.
std::optional<uint32_t> whole_number(const std::string& digits, int base, uint32_t max) {
  if (digits.empty() || digits.size() > 8) return std::nullopt;
  for (const char c : digits) {
    if (base == 16 ? !std::isxdigit(static_cast<unsigned char>(c)) : !std::isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  const unsigned long value = std::stoul(digits, nullptr, base);
  if (value > max) return std::nullopt;
  return static_cast<uint32_t>(value);
}

}  // namespace

MaskMapping parse_mask_mapping(const std::string& text) {
  std::map<uint32_t, int> mapping;
  int colours = 0;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    const std::string value = eq == std::string::npos ? item : item.substr(0, eq);
    const std::string target = eq == std::string::npos ? "" : item.substr(eq + 1);
    // A grey value of an 8- or 16-bit mask, or a colour's six hex digits.
    const bool colour = !value.empty() && value[0] == '#';
    const std::optional<uint32_t> key =
        colour ? (value.size() == 7 ? whole_number(value.substr(1), 16, 0xffffff) : std::nullopt)
               : whole_number(value, 10, 65535);
    const bool ignore = target == "ignore";
    const std::optional<uint32_t> id = whole_number(target, 10, 255);
    DPUNET_CHECK(eq != std::string::npos && key && (ignore || id), "mask mapping: '", item,
                 "' is not VALUE=CLASS (a grey value 0-65535 or a colour #rrggbb, = a class 0-255 or ignore; e.g. "
                 "255=1, 255=ignore or #ff0000=1)");
    DPUNET_CHECK(mapping.count(*key) == 0, "mask mapping: ", value, " is mapped twice");
    mapping[*key] = ignore ? kIgnoreClass : static_cast<int>(*id);
    colours += colour ? 1 : 0;
    start = end + 1;
  }
  DPUNET_CHECK(!mapping.empty(), "mask mapping: empty");
  DPUNET_CHECK(colours == 0 || colours == static_cast<int>(mapping.size()), "mask mapping '", text,
               "': give grey values or #rrggbb colours, not both (a mask is grey or colour)");
  const MaskMapping parsed{std::move(mapping), colours > 0};
  DPUNET_CHECK(!parsed.maps_ignore() || parsed.classes() <= kDefaultIgnoreLabel, "mask mapping '", text,
               "': with an ignore value, class ids must be below ", kDefaultIgnoreLabel, " (the ignore label)");
  return parsed;
}

void MaskMapping::check_kind(bool colour_mask, const std::string& mask_file) const {
  DPUNET_CHECK(!colours || colour_mask, mask_file,
               ": the mask mapping names colours (#rrggbb), but this mask is grey (a palette PNG or TIFF mask is "
               "read as its palette indices): map its values, e.g. 0=0,1=1");
  DPUNET_CHECK(colours || !colour_mask, mask_file,
               ": the mask mapping names grey values, but this mask is in colour: map its colours, e.g. "
               "#000000=0,#ff0000=1");
}

std::string MaskMapping::text() const {
  std::string text;
  for (const auto& [key, id] : class_of_value) {
    text += (text.empty() ? "" : ",") + mask_key_text(key, colours) + "=" +
            (id == kIgnoreClass ? std::string("ignore") : std::to_string(id));
  }
  return text;
}

int MaskMapping::classes() const {
  int classes = 2;
  for (const auto& [key, id] : class_of_value) classes = std::max(classes, id + 1);
  return classes;
}

bool MaskMapping::maps_ignore() const {
  for (const auto& [key, id] : class_of_value) {
    if (id == kIgnoreClass) return true;
  }
  return false;
}

}  // namespace dpunet::data
