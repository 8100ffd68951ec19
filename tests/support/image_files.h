// Image files the library does not write itself, for tests: TIFFs of every layout the
// reader must handle or refuse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image_io.h"

namespace dpunet::test {

// Writes `image` (1 or 3 channels, values up to 65535) as a 16-bit TIFF.
void write_tiff16(const std::string& path, const data::Image& image);

// A TIFF's layout beyond its samples.
struct TiffLayout {
  int bits = 8;
  int samples = 1;                 // per pixel; `values` holds [H, W, samples]
  int photometric = 1;             // PHOTOMETRIC_*: 0 white is zero, 1 black is zero, 2 RGB, 3 palette, 6 YCbCr
  std::vector<uint16_t> extra;     // EXTRASAMPLE_* of the samples beyond the colour ones; empty: no tag
  int tile = 0;                    // tile side (a multiple of 16); 0: strips
  int planar = 1;                  // PLANARCONFIG_*: 1 interleaved, 2 separate
  int pages = 1;                   // the image repeated on this many pages
  bool thumbnail = false;          // the later pages are marked reduced-resolution images
  bool thumbnail_first = false;    // a 1x1 reduced-resolution page of 0s comes before the image
  int compression = 1;             // COMPRESSION_*: 1 none, 8 deflate, 7 JPEG (of RGB values, as YCbCr)
  int rows_per_strip = 0;          // 0: libtiff's choice
  std::vector<uint16_t> colormap;  // palette: 3 x 2^bits entries, red then green then blue
  int orientation = 0;             // ORIENTATION_*; 0: no tag
};

// Writes `values` [height, width, layout.samples] as a TIFF of `layout`.
void write_tiff(const std::string& path, int64_t height, int64_t width, const std::vector<uint16_t>& values,
                const TiffLayout& layout);

}  // namespace dpunet::test
