// write_tiff16, write_tiff.
#include "support/image_files.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/error.h"

namespace dpunet::test {

void write_tiff16(const std::string& path, const data::Image& image) {
  TiffLayout layout;
  layout.bits = 16;
  layout.samples = static_cast<int>(image.channels);
  layout.photometric = image.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  write_tiff(path, image.height, image.width, image.values, layout);
}

namespace {

// Samples [first, first + count) of `values` as bytes of the file's sample width, in rows
// of `row` samples: below 8 bits each row is packed from the high bit down and starts on
// a byte.
std::vector<unsigned char> encode(const std::vector<uint16_t>& values, size_t first, size_t count, int bits,
                                  size_t row) {
  if (bits < 8) {
    const size_t row_bytes = (row * static_cast<size_t>(bits) + 7) / 8;
    std::vector<unsigned char> bytes(count / row * row_bytes, 0);
    for (size_t i = 0; i < count; ++i) {
      const size_t bit = (i % row) * static_cast<size_t>(bits);
      bytes[i / row * row_bytes + bit / 8] |= static_cast<unsigned char>(values[first + i] << (8 - bits - bit % 8));
    }
    return bytes;
  }
  std::vector<unsigned char> bytes(count * static_cast<size_t>(bits / 8));
  for (size_t i = 0; i < count; ++i) {
    if (bits == 16) {
      reinterpret_cast<uint16_t*>(bytes.data())[i] = values[first + i];
    } else {
      bytes[i] = static_cast<unsigned char>(values[first + i]);
    }
  }
  return bytes;
}

// One page (directory) of `layout`, `values` [height, width, samples].
void write_page(TIFF* tiff, int64_t height, int64_t width, const std::vector<uint16_t>& values,
                const TiffLayout& layout) {
  const auto samples = static_cast<size_t>(layout.samples);
  TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(width));
  TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(height));
  TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, layout.bits);
  TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(layout.samples));
  TIFFSetField(tiff, TIFFTAG_PLANARCONFIG, layout.planar);
  TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, layout.photometric);
  TIFFSetField(tiff, TIFFTAG_COMPRESSION, layout.compression);
  if (layout.orientation > 0) TIFFSetField(tiff, TIFFTAG_ORIENTATION, static_cast<uint16_t>(layout.orientation));
  if (layout.rows_per_strip > 0) TIFFSetField(tiff, TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(layout.rows_per_strip));
  if (!layout.extra.empty()) {
    TIFFSetField(tiff, TIFFTAG_EXTRASAMPLES, static_cast<uint16_t>(layout.extra.size()), layout.extra.data());
  }
  if (!layout.colormap.empty()) {
    const size_t n = layout.colormap.size() / 3;
    std::vector<uint16_t> map = layout.colormap;
    TIFFSetField(tiff, TIFFTAG_COLORMAP, map.data(), map.data() + n, map.data() + 2 * n);
  }
  if (layout.photometric == PHOTOMETRIC_YCBCR) TIFFSetField(tiff, TIFFTAG_YCBCRSUBSAMPLING, 1, 1);
  if (layout.compression == COMPRESSION_JPEG) {
    TIFFSetField(tiff, TIFFTAG_JPEGQUALITY, 95);
    // RGB given, YCbCr stored, as cameras and slide scanners store it.
    if (layout.photometric == PHOTOMETRIC_YCBCR) TIFFSetField(tiff, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  if (layout.tile > 0) {
    TIFFSetField(tiff, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(layout.tile));
    TIFFSetField(tiff, TIFFTAG_TILELENGTH, static_cast<uint32_t>(layout.tile));
    const auto side = static_cast<size_t>(layout.tile);
    std::vector<uint16_t> tile(side * side * samples);
    for (int64_t y0 = 0; y0 < height; y0 += layout.tile) {
      for (int64_t x0 = 0; x0 < width; x0 += layout.tile) {
        std::fill(tile.begin(), tile.end(), 0);
        for (int64_t y = y0; y < std::min<int64_t>(height, y0 + layout.tile); ++y) {
          for (int64_t x = x0; x < std::min<int64_t>(width, x0 + layout.tile); ++x) {
            std::copy_n(values.begin() + static_cast<std::ptrdiff_t>((y * width + x) * layout.samples), samples,
                        tile.begin() + static_cast<std::ptrdiff_t>(((y - y0) * layout.tile + (x - x0)) * samples));
          }
        }
        std::vector<unsigned char> bytes = encode(tile, 0, tile.size(), layout.bits, side * samples);
        TIFFWriteTile(tiff, bytes.data(), static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), 0, 0);
      }
    }
  } else {
    const size_t row = static_cast<size_t>(width) * samples;
    for (int64_t y = 0; y < height; ++y) {
      std::vector<unsigned char> bytes = encode(values, static_cast<size_t>(y) * row, row, layout.bits, row);
      TIFFWriteScanline(tiff, bytes.data(), static_cast<uint32_t>(y), 0);
    }
  }
  TIFFWriteDirectory(tiff);
}

}  // namespace

void write_tiff(const std::string& path, int64_t height, int64_t width, const std::vector<uint16_t>& values,
                const TiffLayout& layout) {
  TIFF* tiff = TIFFOpen(path.c_str(), "w");
  DPUNET_CHECK(tiff != nullptr, path, ": cannot create");
  if (layout.thumbnail_first) {
    TiffLayout thumbnail = layout;
    thumbnail.tile = 0;
    TIFFSetField(tiff, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    write_page(tiff, 1, 1, std::vector<uint16_t>(static_cast<size_t>(layout.samples), 0), thumbnail);
  }
  for (int page = 0; page < layout.pages; ++page) {
    if (layout.pages > 1 || layout.thumbnail_first) {
      TIFFSetField(tiff, TIFFTAG_SUBFILETYPE, layout.thumbnail && page > 0 ? FILETYPE_REDUCEDIMAGE : FILETYPE_PAGE);
    }
    write_page(tiff, height, width, values, layout);
  }
  TIFFClose(tiff);
}

}  // namespace dpunet::test
