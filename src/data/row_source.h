// How ImageRows reads one file format: PNG in image_io.cpp, TIFF in tiff_reader.cpp.
// Internal to image reading; everything else reads through ImageRows or read_image.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/image_io.h"

namespace dpunet::data {

class RowSource {
 public:
  virtual ~RowSource() = default;
  // The file's next row, converted: [width, channels] values. Throws naming the file.
  virtual void read_row(uint16_t* out) = 0;
};

// One error for a mask pixel that is not opaque, whatever the format: a transparent pixel
// is one nobody labelled, which must not pass for a label.
[[noreturn]] void fail_transparent_mask_pixel(const std::string& path, int64_t row, int64_t column, int alpha);

// Each reads the file's header into `header` (values left empty), refusing what the
// format's reader cannot read, before any pixel is decoded.
std::unique_ptr<RowSource> open_png_rows(const std::string& path, ImageRole role, Image& header);
std::unique_ptr<RowSource> open_tiff_rows(const std::string& path, ImageRole role, Image& header);

}  // namespace dpunet::data
