// Mask values to class ids: --mask-map's grey values or #rrggbb colours, the keys of mask
// pixels, and the checks that keep one label from becoming several classes (import and
// predict --eval read masks alike).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

namespace dpunet::data {

// The class id of a mask value that marks unlabelled pixels ("VALUE=ignore").
inline constexpr int kIgnoreClass = -1;

// Mask values to class ids, as --mask-map names them or import finds them. One mapping
// names one kind of key: grey values (of grey masks) or colours (of colour masks).
struct MaskMapping {
  // A grey value, or a colour as 0xRRGGBB -> class id, or kIgnoreClass.
  std::map<uint32_t, int> class_of_value;
  bool colours = false;  // the keys are colours (#rrggbb), not grey values

  bool empty() const { return class_of_value.empty(); }
  // The classes it makes: one above its largest class id, at least 2.
  int classes() const;
  bool maps_ignore() const;
  // As parse_mask_mapping reads it: "0=0,255=1" or "#000000=0,#ff0000=1".
  std::string text() const;
  // A mapping of colours for a grey mask, or of grey values for a colour one, refused
  // naming the mask: a value could match by chance (grey 255 and colour #0000ff are one key).
  void check_kind(bool colour_mask, const std::string& mask_file) const;
};

// Parses "0=0,128=1,255=2", "0=0,1=1,255=ignore" or "#000000=0,#ff0000=1".
MaskMapping parse_mask_mapping(const std::string& text);

struct Image;
// A mask pixel's key for class_of_value: grey masks their value, colour masks 0xRRGGBB
// (16-bit colours keep the high byte).
uint32_t mask_key(const Image& mask, int64_t pixel);
// Throws naming the mask when two colours of a 16-bit colour mask share a key (they
// differ only in the low bytes, which keys drop): they would silently become one class.
// Fed the mask a band of rows at a time: each band's colours against every band's before.
class ColourKeyCheck {
 public:
  explicit ColourKeyCheck(std::string path) : path_(std::move(path)) {}
  // `mask` holds the file's rows from `top` (for messages).
  void check(const Image& mask, int64_t top);

 private:
  std::string path_;
  std::unordered_map<uint32_t, uint64_t> colour_of_key_;
};
// A key as --mask-map writes it: "255" for grey, "#ff0000" for colour masks.
std::string mask_key_text(uint32_t key, bool colour);

}  // namespace dpunet::data
