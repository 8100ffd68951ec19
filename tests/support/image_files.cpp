// write_tiff16.
#include "support/image_files.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/error.h"

namespace dpunet::test {

void write_tiff16(const std::string& path, const data::Image& image) {
  TIFF* tiff = TIFFOpen(path.c_str(), "w");
  DPUNET_CHECK(tiff != nullptr, path, ": cannot create");
  TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(image.width));
  TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(image.height));
  TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 16);
  TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(image.channels));
  TIFFSetField(tiff, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, image.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  std::vector<uint16_t> row(image.width * image.channels);
  for (int64_t y = 0; y < image.height; ++y) {
    std::copy_n(image.values.begin() + y * row.size(), row.size(), row.begin());
    TIFFWriteScanline(tiff, row.data(), static_cast<uint32_t>(y), 0);
  }
  TIFFClose(tiff);
}

}  // namespace dpunet::test
