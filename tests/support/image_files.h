// Image files the library does not write itself, for tests: 16-bit TIFFs.
#pragma once

#include <string>

#include "data/image_io.h"

namespace dpunet::test {

// Writes `image` (1 or 3 channels, values up to 65535) as a 16-bit TIFF.
void write_tiff16(const std::string& path, const data::Image& image);

}  // namespace dpunet::test
