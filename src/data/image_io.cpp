// PNG reading (a row at a time) and writing with libpng, and ImageRows over both formats
// (TIFFs: tiff_reader.cpp). libpng reports errors by longjmp, so each function that calls
// setjmp holds only trivially destructible locals.
#include "data/image_io.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text.h"
#include "data/row_source.h"

namespace dpunet::data {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

struct PngError {
  char message[256] = "";
};

void png_error_to_jump(png_structp png, png_const_charp message) {
  auto* error = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(error->message, sizeof(error->message), "%s", message);
  png_longjmp(png, 1);
}
void png_ignore_warning(png_structp, png_const_charp) {}

struct PngInfo {
  png_uint_32 width = 0, height = 0;
  int channels = 0;
  int bits = 0;          // per value as read: 8 or 16
  int stored_bits = 0;   // per value in the file: 1, 2, 4, 8 or 16
  int passes = 1;        // 7 for an interlaced image
  bool palette = false;  // colour type palette: a mask's values are its indices
  bool alpha = false;    // a mask's alpha channel, kept to be checked: the last value of each pixel
  // A mask's transparency chunk, to be checked as its alpha is: the alpha of each palette
  // index (those past the list are opaque), or the one grey value or colour that is clear.
  std::vector<uint8_t> index_alpha;
  bool clear_key = false;
  uint16_t key[3] = {0, 0, 0};
};

// Reads the header and sets up conversions: an image's palette to RGB (a mask's indices
// kept), alpha dropped, 16-bit values in host order, and grey below 8 bits to one byte
// per value: an image's scaled to the 8-bit range (as it is displayed), a mask's kept as
// stored (a 1-bit mask's labels are 0 and 1, not 0 and 255).
bool png_read_header(png_structp png, png_infop info, FILE* file, ImageRole role, PngInfo* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  out->stored_bits = png_get_bit_depth(png, info);
  out->palette = color == PNG_COLOR_TYPE_PALETTE;
  // A label mask's palette indices are its labels (as TIFF masks', and as PIL reads mode
  // P); an image's palette gives its colours.
  if (color == PNG_COLOR_TYPE_PALETTE && role == ImageRole::kImage) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_PALETTE && role == ImageRole::kLabels && out->stored_bits < 8) png_set_packing(png);
  if (color == PNG_COLOR_TYPE_GRAY && out->stored_bits < 8) {
    if (role == ImageRole::kLabels) {
      png_set_packing(png);
    } else {
      png_set_expand_gray_1_2_4_to_8(png);
    }
  }
  // A palette's transparency chunk becomes an alpha channel on expansion: strip that too.
  // A mask's alpha channel is kept, to be checked: a transparent pixel is one nobody
  // labelled, which must not pass for a label.
  out->alpha = (color & PNG_COLOR_MASK_ALPHA) != 0 && role == ImageRole::kLabels;
  if (role == ImageRole::kLabels && png_get_valid(png, info, PNG_INFO_tRNS) != 0) {
    png_bytep alphas = nullptr;
    int count = 0;
    png_color_16p colour = nullptr;
    png_get_tRNS(png, info, &alphas, &count, &colour);
    if (color == PNG_COLOR_TYPE_PALETTE && alphas != nullptr) {
      out->index_alpha.assign(alphas, alphas + count);
    } else if (colour != nullptr) {
      out->clear_key = true;
      out->key[0] = color == PNG_COLOR_TYPE_GRAY ? colour->gray : colour->red;
      out->key[1] = colour->green;
      out->key[2] = colour->blue;
    }
  }
  if (!out->alpha && ((color & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, info, PNG_INFO_tRNS) != 0)) {
    png_set_strip_alpha(png);
  }
  if (png_get_bit_depth(png, info) == 16) png_set_swap(png);
  out->passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->channels = png_get_channels(png, info);
  out->bits = png_get_bit_depth(png, info);
  return true;
}

bool png_read_rows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

bool png_read_next_row(png_structp png, png_bytep row) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_row(png, row, nullptr);
  return true;
}

bool png_read_to_end(png_structp png) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_end(png, nullptr);
  return true;
}

}  // namespace

size_t interlaced_png_bytes(const std::string& path, size_t row_bytes, size_t height) {
  DPUNET_CHECK(row_bytes == 0 || height <= std::numeric_limits<size_t>::max() / row_bytes, path,
               ": an interlaced PNG of ", height, " rows of ", row_bytes,
               " bytes is decoded whole, and that is more bytes than this machine can address; save it "
               "non-interlaced (read a band of rows at a time)");
  return row_bytes * height;
}

namespace {

// A PNG's rows in order, one decoded at a time (an interlaced one's all at the first).
class PngRows final : public RowSource {
 public:
  PngRows(const std::string& path, ImageRole role, Image& header) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    DPUNET_CHECK(file_, path, ": cannot open");
    structs_.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error_, png_error_to_jump, png_ignore_warning);
    DPUNET_CHECK(structs_.png, path, ": libpng could not start");
    // libpng's default refuses images over a million pixels a side; the format allows 2^31 - 1.
    png_set_user_limits(structs_.png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    structs_.info = png_create_info_struct(structs_.png);
    DPUNET_CHECK(structs_.info, path, ": libpng could not start");
    DPUNET_CHECK(png_read_header(structs_.png, structs_.info, file_.get(), role, &info_), path,
                 ": not a readable PNG (", error_.message, ")");
    header.height = info_.height;
    header.width = info_.width;
    header.channels = info_.channels - (info_.alpha ? 1 : 0);
    // A mask unpacked as stored keeps its file's depth: masks of one import must be alike.
    const bool unpacked_grey =
        info_.channels == 1 && info_.stored_bits < 8 && role == ImageRole::kLabels;  // or indices
    header.bits = unpacked_grey ? info_.stored_bits : info_.bits;
    if (role == ImageRole::kLabels && info_.palette) header.stored = StoredValues::kPaletteIndices;
    row_bytes_ = static_cast<size_t>(info_.width) * info_.channels * (info_.bits / 8);
  }

  void read_row(uint16_t* out) override {
    const unsigned char* row = nullptr;
    if (info_.passes > 1) {
      // Interlaced: every pass must be read before any row is whole.
      if (bytes_.empty()) {
        const size_t whole = interlaced_png_bytes(path_, row_bytes_, info_.height);
        try {
          bytes_.resize(whole);
        } catch (const std::exception&) {  // bad_alloc, or length_error past the vector's limit
          DPUNET_FAIL(path_, ": an interlaced PNG is decoded whole, and its ", whole >> 20,
                      " MiB do not fit in memory; save it non-interlaced (read a band of rows at a time)");
        }
        std::vector<png_bytep> rows(info_.height);
        for (size_t y = 0; y < rows.size(); ++y) rows[y] = bytes_.data() + y * row_bytes_;
        DPUNET_CHECK(png_read_rows(structs_.png, rows.data()), path_, ": damaged PNG (", error_.message, ")");
      }
      row = bytes_.data() + next_ * row_bytes_;
    } else {
      if (bytes_.empty()) bytes_.resize(row_bytes_);
      DPUNET_CHECK(png_read_next_row(structs_.png, bytes_.data()), path_, ": damaged PNG at row ", next_, " (",
                   error_.message, ")");
      // What follows the pixels is checked too: a file cut short there is damaged as well.
      if (next_ + 1 == info_.height) {
        DPUNET_CHECK(png_read_to_end(structs_.png), path_, ": damaged PNG (", error_.message, ")");
      }
      row = bytes_.data();
    }
    const size_t values = static_cast<size_t>(info_.width) * info_.channels;
    if (info_.alpha) {
      copy_opaque(row, out);
    } else if (info_.bits == 16) {
      std::memcpy(out, row, values * sizeof(uint16_t));
    } else {
      std::copy_n(row, values, out);
    }
    if (!info_.index_alpha.empty() || info_.clear_key) check_transparency_chunk(out);
    ++next_;
  }

 private:
  [[noreturn]] void fail_transparent(size_t x, int alpha) const {
    fail_transparent_mask_pixel(path_, static_cast<int64_t>(next_), static_cast<int64_t>(x), alpha);
  }

  // A mask's row, read, against its transparency chunk.
  void check_transparency_chunk(const uint16_t* row) const {
    const size_t channels = static_cast<size_t>(info_.channels);
    for (size_t x = 0; x < info_.width; ++x) {
      const uint16_t* pixel = row + x * channels;
      if (!info_.index_alpha.empty()) {
        if (pixel[0] < info_.index_alpha.size() && info_.index_alpha[pixel[0]] != 255) {
          fail_transparent(x, info_.index_alpha[pixel[0]]);
        }
      } else if (std::equal(pixel, pixel + channels, info_.key)) {
        fail_transparent(x, 0);
      }
    }
  }

  // A mask's row without its alpha, which must be opaque throughout.
  void copy_opaque(const unsigned char* row, uint16_t* out) const {
    const size_t channels = static_cast<size_t>(info_.channels), colour = channels - 1;
    const uint16_t opaque = info_.bits == 16 ? 65535 : 255;
    for (size_t x = 0; x < info_.width; ++x) {
      for (size_t c = 0; c < channels; ++c) {
        const size_t i = x * channels + c;
        uint16_t v = row[i];
        if (info_.bits == 16) std::memcpy(&v, row + 2 * i, sizeof(v));
        if (c < colour) {
          out[x * colour + c] = v;
        } else if (v != opaque) {
          fail_transparent(x, v);
        }
      }
    }
  }

  struct ReadStructs {
    png_structp png = nullptr;
    png_infop info = nullptr;
    ~ReadStructs() {
      if (png != nullptr) png_destroy_read_struct(&png, &info, nullptr);
    }
  };

  std::string path_;
  File file_;
  PngError error_;  // libpng writes its message here: it outlives the structs
  ReadStructs structs_;
  PngInfo info_;
  size_t row_bytes_ = 0;
  std::vector<unsigned char> bytes_;  // one row, or an interlaced image's every row
  size_t next_ = 0;
};

// Rows are made by `fill` into `row` one at a time (it must not throw: libpng's errors
// jump over this frame).
bool png_write_rows(png_structp png, png_infop info, FILE* file, int64_t height, int64_t width, int64_t channels,
                    const std::function<void(int64_t, uint8_t*)>& fill, uint8_t* row) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < height; ++y) {
    fill(y, row);
    png_write_row(png, row);
  }
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

bool is_image_file(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".png" || ext == ".tif" || ext == ".tiff";
}

std::string image_stem(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  const std::string ext = lower_extension(path);
  if (ext != ".tif" && ext != ".tiff") return stem;
  // OME-TIFF's name ends in .ome.tif: x.ome.tif is image x, and its mask x_mask.ome.tif.
  std::string inner = lower_extension(stem);
  if (inner == ".ome" && stem.size() > inner.size()) stem.resize(stem.size() - inner.size());
  return stem;
}

void fail_transparent_mask_pixel(const std::string& path, int64_t row, int64_t column, int alpha) {
  DPUNET_FAIL(path, ": a transparent pixel in a mask (row ", row, ", column ", column, ", alpha ", alpha,
              "): unlabelled pixels? give them a value of their own, mapped to ignore (--mask-map VALUE=ignore), "
              "and save the mask without transparency");
}

std::unique_ptr<RowSource> open_png_rows(const std::string& path, ImageRole role, Image& header) {
  return std::make_unique<PngRows>(path, role, header);
}

ImageRows::ImageRows(const std::string& path, ImageRole role) : path_(path) {
  const std::string ext = lower_extension(path);
  if (ext == ".png") {
    source_ = open_png_rows(path, role, header_);
  } else if (ext == ".tif" || ext == ".tiff") {
    source_ = open_tiff_rows(path, role, header_);
  } else {
    DPUNET_FAIL(path, ": unsupported image type '", ext, "' (expected .png, .tif or .tiff)");
  }
}

ImageRows::~ImageRows() = default;

void ImageRows::read(int64_t count, uint16_t* out) {
  DPUNET_CHECK(count >= 0 && rows_read_ + count <= header_.height, path_, ": rows ", rows_read_, " to ",
               rows_read_ + count, " asked of an image of ", header_.height);
  const int64_t row_values = header_.width * header_.channels;
  try {
    for (int64_t r = 0; r < count; ++r, ++rows_read_) source_->read_row(out + r * row_values);
  } catch (const std::bad_alloc&) {
    DPUNET_FAIL(path_, ": the image does not fit in memory (is its header damaged?)");
  }
}

void ImageRows::for_each_band(int64_t band_rows, const std::function<void(const Image& band, int64_t top)>& visit) {
  DPUNET_CHECK(band_rows >= 1, path_, ": bands of ", band_rows, " rows");
  Image band = header_;
  try {
    band.values.resize(static_cast<size_t>(std::min(band_rows, header_.height) * header_.width * header_.channels));
  } catch (const std::bad_alloc&) {
    DPUNET_FAIL(path_, ": the image does not fit in memory (is its header damaged?)");
  }
  while (rows_read_ < header_.height) {
    const int64_t top = rows_read_;
    band.height = std::min(band_rows, header_.height - top);
    read(band.height, band.values.data());
    visit(band, top);
  }
}

Image read_image(const std::string& path, ImageRole role) {
  ImageRows rows(path, role);
  Image image = rows.header();
  try {
    image.values.resize(static_cast<size_t>(image.height * image.width * image.channels));
  } catch (const std::bad_alloc&) {
    DPUNET_FAIL(path, ": the image does not fit in memory (is its header damaged?)");
  }
  rows.read(image.height, image.values.data());
  return image;
}

Image read_image_header(const std::string& path, ImageRole role) {
  return ImageRows(path, role).header();
}

void write_png(const std::string& path, const Image& image) {
  std::vector<uint8_t> bytes(image.values.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    DPUNET_CHECK(image.values[i] < 256, path, ": value ", image.values[i], " does not fit an 8-bit PNG");
    bytes[i] = static_cast<uint8_t>(image.values[i]);
  }
  write_png8(path, image.height, image.width, image.channels, bytes.data());
}

void write_png8(const std::string& path, int64_t height, int64_t width, int64_t channels, const uint8_t* values) {
  const auto row_bytes = static_cast<size_t>(width * channels);
  write_png8_rows(path, height, width, channels,
                  [&](int64_t y, uint8_t* row) { std::memcpy(row, values + y * row_bytes, row_bytes); });
}

void write_png8_rows(const std::string& path, int64_t height, int64_t width, int64_t channels,
                     const std::function<void(int64_t y, uint8_t* row)>& fill) {
  DPUNET_CHECK(channels == 1 || channels == 3, path, ": PNG output needs 1 or 3 channels");
  std::vector<uint8_t> row(static_cast<size_t>(width * channels));
  // Written beside its name and renamed over it when whole: a full disk or an error
  // leaves no cut-short PNG, and an earlier file of that name (a plot drawn again) as it was.
  // A link at `path` is written through, as opening it would be: the file it names is replaced.
  const std::string target = replaced_file(path);
  const std::string temporary = temporary_path_for(target);
  File file(std::fopen(temporary.c_str(), "wb"));
  DPUNET_CHECK(file, path, ": cannot create (", std::strerror(errno), ")");
  std::string failure;
  PngError error;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_error_to_jump, png_ignore_warning);
  if (png == nullptr) {
    failure = "libpng could not start";
  } else {
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_infop info = png_create_info_struct(png);
    std::exception_ptr fill_error;  // the rows' own error (a read of the input), rethrown as it was
    try {
      if (!png_write_rows(png, info, file.get(), height, width, channels, fill, row.data())) {
        failure = std::string("writing the PNG failed (") + error.message + ")";
      }
    } catch (...) {
      fill_error = std::current_exception();
    }
    png_destroy_write_struct(&png, &info);
    if (fill_error) {
      file.reset();
      std::remove(temporary.c_str());
      std::rethrow_exception(fill_error);
    }
  }
  if (failure.empty() && std::fflush(file.get()) != 0) failure = "writing the PNG failed (disk full?)";
  // On disk before its name is: renamed first, a crash could leave an empty file under
  // the final name (a plot, a predicted mask). The folder is not synced for each file (a
  // prediction writes thousands): a crash may lose the newest names, never their bytes.
  if (failure.empty() && ::fsync(fileno(file.get())) != 0) {
    failure = std::string("writing the PNG failed (") + std::strerror(errno) + ")";
  }
  if (const int kept = failure.empty() ? keep_permissions(target, fileno(file.get())) : 0; kept != 0) {
    failure = std::string("cannot set its permissions (") + std::strerror(kept) + ")";
  }
  if (std::fclose(file.release()) != 0 && failure.empty()) failure = "writing the PNG failed (disk full?)";
  if (failure.empty() && std::rename(temporary.c_str(), target.c_str()) != 0) {
    failure = std::string("cannot rename its temporary into place (") + std::strerror(errno) + ")";
  }
  if (!failure.empty()) {
    std::remove(temporary.c_str());
    DPUNET_FAIL(path, ": ", failure);
  }
}

}  // namespace dpunet::data
