// TIFF files in: one 2-D grey or RGB image per file (see tiff_reader.cpp for what is
// refused and why). Used through read_image.
#pragma once

#include <string>

#include "data/image_io.h"

namespace dpunet::data {

Image read_tiff(const std::string& path, ImageRole role);

}  // namespace dpunet::data
