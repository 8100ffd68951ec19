// TIFF reading with libtiff: strips or tiles, interleaved or (one sample) planar, grey
// (black or white is zero), RGB and palette images, alpha dropped, reduced-resolution
// pages (thumbnails, overviews) passed over. What a 2-D segmentation image cannot mean
// unambiguously (stacks of full pages, extra channels that are not alpha, CMYK or YCbCr
// colour) is refused with the reason, never guessed.
#include "data/tiff_reader.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>

#include "common/error.h"

namespace dpunet::data {
namespace {

thread_local std::string tiff_message;
void tiff_capture(const char* module, const char* format, va_list args) {
  char text[256];
  std::vsnprintf(text, sizeof(text), format, args);
  tiff_message = std::string(module ? module : "libtiff") + ": " + text;
}
void tiff_ignore(const char*, const char*, va_list) {}

using Tiff = std::unique_ptr<TIFF, void (*)(TIFF*)>;

struct Layout {
  uint32_t width = 0, height = 0;
  uint16_t bits = 8, samples = 1, planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
};

Layout read_layout(TIFF* tiff, const std::string& path) {
  Layout l;
  TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, &l.width);
  TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, &l.height);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_BITSPERSAMPLE, &l.bits);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_SAMPLESPERPIXEL, &l.samples);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_PLANARCONFIG, &l.planar);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_SAMPLEFORMAT, &l.format);
  // Without the tag, one sample is grey and three are RGB, as most readers assume.
  if (!TIFFGetField(tiff, TIFFTAG_PHOTOMETRIC, &l.photometric)) {
    l.photometric = l.samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  }
  DPUNET_CHECK(l.width > 0 && l.height > 0, path, ": a TIFF without an image size");
  DPUNET_CHECK((l.bits == 8 || l.bits == 16) && l.format == SAMPLEFORMAT_UINT, path, ": ", l.bits,
               "-bit TIFF samples of format ", l.format, " are not supported (8 or 16-bit unsigned)");
  DPUNET_CHECK(l.planar == PLANARCONFIG_CONTIG || l.samples == 1, path,
               ": a TIFF whose colour channels are stored in separate planes is not supported (save it with "
               "interleaved channels)");
  // Said up front: libtiff would report a compression it lacks (JPEG 2000, as in Aperio
  // slides) only as a tile or strip that cannot be decoded, which reads like damage.
  uint16_t compression = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
  DPUNET_CHECK(TIFFIsCODECConfigured(compression) != 0, path, ": TIFF compression ", compression,
               " is not one this libtiff decodes (JPEG 2000 is 33003/33005): save the image uncompressed or with "
               "LZW, deflate or zstd");
  return l;
}

// The colour channels the photometric interpretation defines (1 grey, 3 RGB); the rest
// of the samples must be alpha, which is dropped.
int colour_channels(TIFF* tiff, const Layout& l, const std::string& path) {
  int colour = 0;
  switch (l.photometric) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_PALETTE: colour = 1; break;
    case PHOTOMETRIC_RGB: colour = 3; break;
    default:
      DPUNET_FAIL(path, ": TIFF colour model ", l.photometric,
                  " (CMYK, YCbCr, CIELab, ...) is not supported: save it as grey or RGB");
  }
  DPUNET_CHECK(l.samples >= colour, path, ": ", l.samples, " sample(s) per pixel for a ", colour == 3 ? "RGB" : "grey",
               " TIFF");
  // Without the tag, one sample beyond the colour ones is taken for alpha, as most
  // writers that leave it out mean; a tag that says otherwise (unspecified data, as for
  // the channels of a microscope image) is believed.
  uint16_t extra_count = 0;
  const uint16_t* extra = nullptr;
  if (!TIFFGetField(tiff, TIFFTAG_EXTRASAMPLES, &extra_count, &extra)) extra_count = 0;
  for (int s = colour; s < l.samples; ++s) {
    const int k = s - colour;
    const bool alpha = k < extra_count ? extra[k] == EXTRASAMPLE_ASSOCALPHA || extra[k] == EXTRASAMPLE_UNASSALPHA
                                       : extra_count == 0 && l.samples == colour + 1;
    DPUNET_CHECK(alpha, path, ": ", l.samples, " samples per pixel, of which ", l.samples - colour, " beyond its ",
                 colour == 3 ? "RGB" : "grey",
                 " value(s) are not marked as alpha (channels of a "
                 "multi-channel image?): dpunet reads grey and RGB images; save the channels as an RGB or grey file");
  }
  DPUNET_CHECK(l.photometric != PHOTOMETRIC_PALETTE || l.bits == 8, path, ": a 16-bit palette TIFF is not supported");
  return colour;
}

// Every sample of the image, [H, W, samples], in host order.
std::vector<uint16_t> read_samples(TIFF* tiff, const Layout& l, const std::string& path) {
  const size_t bytes_per = l.bits / 8;
  std::vector<uint16_t> samples(static_cast<size_t>(l.height) * l.width * l.samples);
  const auto sample = [&](const std::vector<unsigned char>& buffer, size_t at) -> uint16_t {
    return l.bits == 16 ? reinterpret_cast<const uint16_t*>(buffer.data())[at] : buffer[at];
  };
  if (TIFFIsTiled(tiff)) {
    uint32_t tile_w = 0, tile_h = 0;
    TIFFGetField(tiff, TIFFTAG_TILEWIDTH, &tile_w);
    TIFFGetField(tiff, TIFFTAG_TILELENGTH, &tile_h);
    DPUNET_CHECK(tile_w > 0 && tile_h > 0, path, ": a tiled TIFF without a tile size");
    std::vector<unsigned char> tile(static_cast<size_t>(TIFFTileSize(tiff)));
    DPUNET_CHECK(tile.size() >= static_cast<size_t>(tile_w) * tile_h * l.samples * bytes_per, path,
                 ": TIFF tiles smaller than their declared size");
    for (uint32_t y0 = 0; y0 < l.height; y0 += tile_h) {
      for (uint32_t x0 = 0; x0 < l.width; x0 += tile_w) {
        DPUNET_CHECK(TIFFReadTile(tiff, tile.data(), x0, y0, 0, 0) >= 0, path, ": damaged TIFF tile at (", y0, ", ", x0,
                     ") (", tiff_message, ")");
        for (uint32_t y = y0; y < std::min(l.height, y0 + tile_h); ++y) {
          for (uint32_t x = x0; x < std::min(l.width, x0 + tile_w); ++x) {
            for (uint16_t s = 0; s < l.samples; ++s) {
              samples[(static_cast<size_t>(y) * l.width + x) * l.samples + s] =
                  sample(tile, (static_cast<size_t>(y - y0) * tile_w + (x - x0)) * l.samples + s);
            }
          }
        }
      }
    }
    return samples;
  }
  std::vector<unsigned char> row(static_cast<size_t>(TIFFScanlineSize(tiff)));
  DPUNET_CHECK(row.size() >= static_cast<size_t>(l.width) * l.samples * bytes_per, path,
               ": TIFF rows shorter than their declared size");
  for (uint32_t y = 0; y < l.height; ++y) {
    DPUNET_CHECK(TIFFReadScanline(tiff, row.data(), y) >= 0, path, ": damaged TIFF at row ", y, " (", tiff_message,
                 ")");
    for (size_t i = 0; i < static_cast<size_t>(l.width) * l.samples; ++i) {
      samples[static_cast<size_t>(y) * l.width * l.samples + i] = sample(row, i);
    }
  }
  return samples;
}

// Full-resolution pages: a thumbnail or a pyramid's overviews (marked reduced images)
// are not more data. Leaves the file at its first page.
int full_pages(TIFF* tiff) {
  int pages = 0;
  do {
    uint32_t type = 0;
    if (!TIFFGetField(tiff, TIFFTAG_SUBFILETYPE, &type) || (type & FILETYPE_REDUCEDIMAGE) == 0) ++pages;
  } while (TIFFReadDirectory(tiff));
  TIFFSetDirectory(tiff, 0);
  return pages;
}

// Colour maps hold 16-bit values; some old writers stored 8-bit ones there.
int colormap_shift(const uint16_t* red, const uint16_t* green, const uint16_t* blue, size_t entries) {
  for (size_t i = 0; i < entries; ++i) {
    if (red[i] > 255 || green[i] > 255 || blue[i] > 255) return 8;
  }
  return 0;
}

}  // namespace

Image read_tiff(const std::string& path, ImageRole role, bool with_pixels) {
  static const bool handlers_set = [] {
    TIFFSetErrorHandler(tiff_capture);
    TIFFSetWarningHandler(tiff_ignore);
    return true;
  }();
  (void)handlers_set;
  tiff_message.clear();
  Tiff tiff(TIFFOpen(path.c_str(), "r"), TIFFClose);
  DPUNET_CHECK(tiff, path, ": not a readable TIFF (", tiff_message, ")");
  // Reading only the first page of a z-stack, a time series or channels saved as pages
  // would train on a fraction of the data without a word.
  const int pages = full_pages(tiff.get());
  DPUNET_CHECK(pages == 1, path, ": a TIFF of ", pages,
               " pages (a stack, a time series or channels as pages); dpunet reads one 2-D image per file: save each "
               "page as its own file, or the channels as one RGB image");
  const Layout l = read_layout(tiff.get(), path);
  const int colour = colour_channels(tiff.get(), l, path);

  Image image;
  image.height = l.height;
  image.width = l.width;
  image.bits = l.bits;
  // A label mask's stored values are its labels: palette indices stay indices, and
  // white-is-zero values are not turned around.
  const bool as_stored = role == ImageRole::kLabels;
  const bool expand_palette = l.photometric == PHOTOMETRIC_PALETTE && !as_stored;
  image.channels = expand_palette ? 3 : colour;
  if (!with_pixels) return image;
  const std::vector<uint16_t> samples = read_samples(tiff.get(), l, path);
  const size_t pixels = static_cast<size_t>(l.height) * l.width;
  image.values.resize(pixels * static_cast<size_t>(image.channels));
  if (expand_palette) {
    // As PNG palettes are: the colours, 8 bits each.
    uint16_t *red = nullptr, *green = nullptr, *blue = nullptr;
    DPUNET_CHECK(TIFFGetField(tiff.get(), TIFFTAG_COLORMAP, &red, &green, &blue), path,
                 ": a palette TIFF without a colour map");
    const int shift = colormap_shift(red, green, blue, 256);
    for (size_t p = 0; p < pixels; ++p) {
      const uint16_t index = samples[p * l.samples];
      image.values[p * 3] = red[index] >> shift;
      image.values[p * 3 + 1] = green[index] >> shift;
      image.values[p * 3 + 2] = blue[index] >> shift;
    }
    return image;
  }
  const uint16_t white = l.bits == 16 ? 65535 : 255;
  for (size_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < colour; ++c) {
      const uint16_t v = samples[p * l.samples + static_cast<size_t>(c)];
      image.values[p * static_cast<size_t>(colour) + static_cast<size_t>(c)] =
          l.photometric == PHOTOMETRIC_MINISWHITE && !as_stored ? static_cast<uint16_t>(white - v) : v;
    }
  }
  return image;
}

}  // namespace dpunet::data
