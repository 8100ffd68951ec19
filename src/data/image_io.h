// PNG and TIFF files in and out, 8 or 16 bits per value, grey or RGB(A). Errors name
// the file; the libraries' own messages are captured, not printed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::data {

struct Image {
  int64_t height = 0, width = 0, channels = 0;  // channels: 1 grey, 3 RGB (alpha dropped)
  int bits = 8;                                 // 8 or 16; a grey PNG mask's 1, 2 or 4 as stored
  std::vector<uint16_t> values;                 // [H, W, C], interleaved as in the file
};

// What a file holds: an image, or a label mask whose stored values are its labels.
enum class ImageRole { kImage, kLabels };

bool is_image_file(const std::string& path);  // .png, .tif, .tiff (any case)
// The name an image file is known by: its file name less the extension, and less ".ome"
// for an OME-TIFF (a.ome.tif is a). Masks are found, and outputs named, by it.
std::string image_stem(const std::string& path);
// Label masks keep their stored values (a TIFF's palette indices and white-is-zero values
// as written, a 1-, 2- or 4-bit grey PNG's values unscaled); images are read as displayed
// (low-bit grey scaled to 8 bits). PNG palettes become colours in both roles.
Image read_image(const std::string& path, ImageRole role = ImageRole::kImage);
// What read_image would give but the pixels (Image::values stays empty): the size,
// channels and bit depth, from the file's header, with read_image's refusals of what it
// cannot read. A slide's is known without decoding it.
Image read_image_header(const std::string& path, ImageRole role = ImageRole::kImage);
// Writes an 8-bit PNG (1 or 3 channels; values must be < 256).
void write_png(const std::string& path, const Image& image);
// Writes an 8-bit PNG from bytes [H, W, C] (C 1 or 3), without an Image's 16-bit copy.
void write_png8(const std::string& path, int64_t height, int64_t width, int64_t channels, const uint8_t* values);

}  // namespace dpunet::data
