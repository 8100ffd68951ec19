// TIFF files in: one 2-D grey or RGB image per file (see tiff_reader.cpp for what is
// refused and why). Used through read_image.
#pragma once

#include <string>

#include "data/image_io.h"

namespace dpunet::data {

// `with_pixels` false: the header only, checked as for reading (Image::values left empty).
Image read_tiff(const std::string& path, ImageRole role, bool with_pixels = true);

}  // namespace dpunet::data
