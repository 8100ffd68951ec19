// TIFF reading with libtiff, a row at a time: strips or tiles, interleaved or (one sample) planar, grey
// (black or white is zero; 1 to 16 bits), RGB and palette images, alpha dropped, reduced-resolution
// pages (thumbnails, overviews) passed over. What a 2-D segmentation image cannot mean
// unambiguously (stacks of full pages, extra channels that are not alpha, CMYK or YCbCr
// colour) is refused with the reason, never guessed.
#include "data/row_source.h"

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
  // Below 8 bits (bilevel masks, 4-bit palettes), one sample a pixel: packed grey or indices.
  const bool packed = (l.bits == 1 || l.bits == 2 || l.bits == 4) && l.samples == 1;
  DPUNET_CHECK((l.bits == 8 || l.bits == 16 || packed) && l.format == SAMPLEFORMAT_UINT, path, ": ", l.bits,
               "-bit TIFF samples of format ", l.format, " (", l.samples,
               " a pixel) are not supported (8 or 16-bit unsigned; 1, 2 or 4-bit grey or palette)");
  // Pixels are read in stored order: one that viewers turn or mirror (a camera's) would lie
  // turned against its mask, silently where it is square.
  uint16_t orientation = ORIENTATION_TOPLEFT;
  TIFFGetFieldDefaulted(tiff, TIFFTAG_ORIENTATION, &orientation);
  DPUNET_CHECK(orientation == ORIENTATION_TOPLEFT, path, ": TIFF orientation ", orientation,
               " (viewers show it turned or mirrored) is not supported: save it with its pixels as shown (orientation "
               "1, top-left)");
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
  // JPEG stores colour as YCbCr (most JPEG TIFFs, and slides' tiles): libjpeg turns it
  // back into RGB as it decodes, and the tile and row sizes become RGB's.
  if (compression == COMPRESSION_JPEG && l.photometric == PHOTOMETRIC_YCBCR && l.samples == 3 && l.bits == 8) {
    DPUNET_CHECK(TIFFSetField(tiff, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB) == 1, path,
                 ": cannot have libtiff decode its JPEG YCbCr as RGB");
    l.photometric = PHOTOMETRIC_RGB;
  }
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
  DPUNET_CHECK(l.photometric != PHOTOMETRIC_PALETTE || l.bits <= 8, path, ": a 16-bit palette TIFF is not supported");
  return colour;
}

// Full-resolution pages: a thumbnail or a pyramid's overviews (marked reduced images)
// are not more data. Leaves the file at its first full page, which need not be the first
// page (some scanners and DNG files write the thumbnail first).
int full_pages(TIFF* tiff, const std::string& path) {
  int pages = 0;
  tdir_t first_full = 0;
  for (int directory = 1;; ++directory) {
    uint32_t type = 0;
    if (!TIFFGetField(tiff, TIFFTAG_SUBFILETYPE, &type) || (type & FILETYPE_REDUCEDIMAGE) == 0) {
      if (pages++ == 0) first_full = TIFFCurrentDirectory(tiff);
    }
    if (TIFFLastDirectory(tiff)) break;
    // TIFFReadDirectory says 0 at the end of the page list and for a page it cannot
    // read alike: a stack cut short would pass for its first page.
    tiff_message.clear();
    DPUNET_CHECK(TIFFReadDirectory(tiff), path, ": a damaged TIFF: its page list names a page ", directory + 1,
                 " that cannot be read (", tiff_message, "); was the file cut short?");
  }
  tiff_message.clear();
  DPUNET_CHECK(TIFFSetDirectory(tiff, first_full), path, ": a damaged TIFF: cannot go back to its page ",
               first_full + 1, " (", tiff_message, ")");
  return pages;
}

// Colour maps hold 16-bit values; some old writers stored 8-bit ones there.
int colormap_shift(const uint16_t* red, const uint16_t* green, const uint16_t* blue, size_t entries) {
  for (size_t i = 0; i < entries; ++i) {
    if (red[i] > 255 || green[i] > 255 || blue[i] > 255) return 8;
  }
  return 0;
}

// A TIFF's rows in order. Strips are read a row at a time; a tiled file a row of tiles at
// a time, so memory holds one tile's height of the image's width, never the image.
class TiffRows final : public RowSource {
 public:
  TiffRows(const std::string& path, ImageRole role, Image& header)
      : path_(path), tiff_(open(path)), layout_(one_page_layout(tiff_.get(), path)) {
    colour_ = colour_channels(tiff_.get(), layout_, path);
    // A label mask's stored values are its labels: palette indices stay indices, and
    // white-is-zero values are not turned around.
    const bool as_stored = role == ImageRole::kLabels;
    expand_palette_ = layout_.photometric == PHOTOMETRIC_PALETTE && !as_stored;
    invert_ = layout_.photometric == PHOTOMETRIC_MINISWHITE && !as_stored;
    if (expand_palette_) {
      DPUNET_CHECK(TIFFGetField(tiff_.get(), TIFFTAG_COLORMAP, &red_, &green_, &blue_), path,
                   ": a palette TIFF without a colour map");
      shift_ = colormap_shift(red_, green_, blue_, size_t{1} << layout_.bits);
    }
    // Below 8 bits, as PNGs: an image's grey is scaled to 8 bits (a 1-bit image's 1 is
    // 255), a mask keeps its stored values and depth (a bilevel mask's labels are 0 and 1).
    const bool packed = layout_.bits < 8;
    white_ = layout_.bits == 16 ? 65535 : static_cast<uint16_t>((1u << std::min<int>(layout_.bits, 8)) - 1);
    if (packed && !as_stored) scale_ = static_cast<uint16_t>(255 / white_);
    header.height = layout_.height;
    header.width = layout_.width;
    header.bits = packed && !as_stored ? 8 : layout_.bits;
    header.channels = expand_palette_ ? 3 : colour_;
    // A mask's alpha (its extra samples are alpha, colour_channels checked) must be opaque:
    // a transparent pixel is one nobody labelled, which must not pass for a label.
    check_alpha_ = as_stored && layout_.samples > colour_;
    if (as_stored && layout_.photometric == PHOTOMETRIC_PALETTE) header.stored = StoredValues::kPaletteIndices;
    if (as_stored && layout_.photometric == PHOTOMETRIC_MINISWHITE) header.stored = StoredValues::kWhiteIsZero;
    channels_ = static_cast<size_t>(header.channels);
  }

  void read_row(uint16_t* out) override {
    const uint16_t* samples = TIFFIsTiled(tiff_.get()) ? tiled_row() : strip_row();
    const size_t width = layout_.width, stride = layout_.samples;
    if (expand_palette_) {
      // As PNG palettes are: the colours, 8 bits each.
      for (size_t x = 0; x < width; ++x) {
        const uint16_t index = samples[x * stride];
        out[x * 3] = red_[index] >> shift_;
        out[x * 3 + 1] = green_[index] >> shift_;
        out[x * 3 + 2] = blue_[index] >> shift_;
      }
    } else {
      for (size_t x = 0; x < width; ++x) {
        for (size_t c = 0; c < channels_; ++c) {
          const uint16_t v = samples[x * stride + c];
          out[x * channels_ + c] = static_cast<uint16_t>((invert_ ? white_ - v : v) * scale_);
        }
      }
    }
    for (size_t x = 0; check_alpha_ && x < width; ++x) {
      const uint16_t alpha = samples[x * stride + static_cast<size_t>(colour_)];
      if (alpha != white_) fail_transparent_mask_pixel(path_, next_, static_cast<int64_t>(x), alpha);
    }
    ++next_;
  }

 private:
  static Tiff open(const std::string& path) {
    static const bool handlers_set = [] {
      TIFFSetErrorHandler(tiff_capture);
      TIFFSetWarningHandler(tiff_ignore);
      return true;
    }();
    (void)handlers_set;
    tiff_message.clear();
    // "m": read, not mapped: a mapped slide would count its every page read in the
    // process's memory (and a job's memory limit) until the file is closed.
    Tiff tiff(TIFFOpen(path.c_str(), "rm"), TIFFClose);
    DPUNET_CHECK(tiff, path, ": not a readable TIFF (", tiff_message, ")");
    return tiff;
  }

  static Layout one_page_layout(TIFF* tiff, const std::string& path) {
    // Reading only the first page of a z-stack, a time series or channels saved as pages
    // would train on a fraction of the data without a word.
    const int pages = full_pages(tiff, path);
    DPUNET_CHECK(pages == 1, path, ": a TIFF of ", pages,
                 " pages (a stack, a time series or channels as pages); dpunet reads one 2-D image per file: save "
                 "each page as its own file, or the channels as one RGB image");
    return read_layout(tiff, path);
  }

  // Sample `i` of the stored row that starts at byte `row_start` of raw_ (rows below 8
  // bits start on a byte, their samples packed from the high bit down).
  uint16_t sample(size_t row_start, size_t i) const {
    const unsigned char* row = raw_.data() + row_start;
    if (layout_.bits == 16) return reinterpret_cast<const uint16_t*>(row)[i];
    if (layout_.bits == 8) return row[i];
    const size_t bit = i * layout_.bits;
    return static_cast<uint16_t>((row[bit / 8] >> (8 - layout_.bits - bit % 8)) & white_);
  }

  // Bytes that `samples` stored samples take, packed.
  size_t stored_bytes(size_t samples) const { return (samples * layout_.bits + 7) / 8; }

  // Row next_'s samples [W, samples], in host order.
  const uint16_t* strip_row() {
    const size_t values = static_cast<size_t>(layout_.width) * layout_.samples;
    if (raw_.empty()) {
      raw_.resize(static_cast<size_t>(TIFFScanlineSize(tiff_.get())));
      DPUNET_CHECK(raw_.size() >= stored_bytes(values), path_, ": TIFF rows shorter than their declared size");
      samples_.resize(values);
    }
    tiff_message.clear();
    DPUNET_CHECK(TIFFReadScanline(tiff_.get(), raw_.data(), next_) >= 0, path_, ": damaged TIFF at row ", next_, " (",
                 tiff_message, ")");
    for (size_t i = 0; i < values; ++i) samples_[i] = sample(0, i);
    return samples_.data();
  }

  // Row next_'s samples, from the row of tiles holding it (read when the row is its first).
  const uint16_t* tiled_row() {
    const size_t width = layout_.width, stride = layout_.samples;
    if (raw_.empty()) {
      TIFFGetField(tiff_.get(), TIFFTAG_TILEWIDTH, &tile_w_);
      TIFFGetField(tiff_.get(), TIFFTAG_TILELENGTH, &tile_h_);
      DPUNET_CHECK(tile_w_ > 0 && tile_h_ > 0, path_, ": a tiled TIFF without a tile size");
      raw_.resize(static_cast<size_t>(TIFFTileSize(tiff_.get())));
      tile_row_bytes_ = static_cast<size_t>(TIFFTileRowSize(tiff_.get()));
      DPUNET_CHECK(tile_row_bytes_ >= stored_bytes(static_cast<size_t>(tile_w_) * stride) &&
                       raw_.size() >= tile_row_bytes_ * tile_h_,
                   path_, ": TIFF tiles smaller than their declared size");
      samples_.resize(static_cast<size_t>(tile_h_) * width * stride);
    }
    const uint32_t y0 = next_ - next_ % tile_h_;
    if (next_ == y0) {
      const uint32_t rows = std::min(tile_h_, layout_.height - y0);
      for (uint32_t x0 = 0; x0 < layout_.width; x0 += tile_w_) {
        tiff_message.clear();
        DPUNET_CHECK(TIFFReadTile(tiff_.get(), raw_.data(), x0, y0, 0, 0) >= 0, path_, ": damaged TIFF tile at (", y0,
                     ", ", x0, ") (", tiff_message, ")");
        const size_t columns = std::min(tile_w_, layout_.width - x0);
        for (size_t y = 0; y < rows; ++y) {
          for (size_t x = 0; x < columns; ++x) {
            for (size_t s = 0; s < stride; ++s) {
              samples_[(y * width + x0 + x) * stride + s] = sample(y * tile_row_bytes_, x * stride + s);
            }
          }
        }
      }
    }
    return samples_.data() + static_cast<size_t>(next_ - y0) * width * stride;
  }

  std::string path_;
  Tiff tiff_;
  Layout layout_;
  int colour_ = 1;
  size_t channels_ = 1;
  bool expand_palette_ = false, invert_ = false;
  bool check_alpha_ = false;                                            // a mask's alpha: must be opaque
  const uint16_t *red_ = nullptr, *green_ = nullptr, *blue_ = nullptr;  // the colour map, while the file is open
  int shift_ = 0;
  uint16_t white_ = 255;  // the largest stored value
  uint16_t scale_ = 1;    // an image's stored grey to 8 bits (below 8 bits)
  uint32_t tile_w_ = 0, tile_h_ = 0;
  size_t tile_row_bytes_ = 0;       // one row of a tile, as stored
  std::vector<unsigned char> raw_;  // one scanline, or one tile, as stored
  std::vector<uint16_t> samples_;   // one row, or one row of tiles: [rows, W, samples]
  uint32_t next_ = 0;
};

}  // namespace

std::unique_ptr<RowSource> open_tiff_rows(const std::string& path, ImageRole role, Image& header) {
  return std::make_unique<TiffRows>(path, role, header);
}

}  // namespace dpunet::data
