// PNG reading and writing with libpng (TIFFs: tiff_reader.cpp). libpng reports errors by
// longjmp, so each function that calls setjmp holds only trivially destructible locals.
#include "data/image_io.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>

#include "common/error.h"
#include "data/tiff_reader.h"

namespace dpunet::data {
namespace {

std::string lower_extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

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
  int bits = 0;         // per value as read: 8 or 16
  int stored_bits = 0;  // per value in the file: 1, 2, 4, 8 or 16
};

// Reads the header and sets up conversions: palette to RGB, alpha dropped, 16-bit values
// in host order, and grey below 8 bits to one byte per value: an image's scaled to the
// 8-bit range (as it is displayed), a mask's kept as stored (a 1-bit mask's labels are 0
// and 1, not 0 and 255).
bool png_read_header(png_structp png, png_infop info, FILE* file, ImageRole role, PngInfo* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  out->stored_bits = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && out->stored_bits < 8) {
    if (role == ImageRole::kLabels) {
      png_set_packing(png);
    } else {
      png_set_expand_gray_1_2_4_to_8(png);
    }
  }
  // A palette's transparency chunk becomes an alpha channel on expansion: strip that too.
  if ((color & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, info, PNG_INFO_tRNS) != 0) png_set_strip_alpha(png);
  if (png_get_bit_depth(png, info) == 16) png_set_swap(png);
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

// `with_pixels` false: the header only (Image::values left empty).
Image read_png(const std::string& path, ImageRole role, bool with_pixels) {
  File file(std::fopen(path.c_str(), "rb"));
  DPUNET_CHECK(file, path, ": cannot open");
  PngError error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, png_error_to_jump, png_ignore_warning);
  DPUNET_CHECK(png, path, ": libpng could not start");
  // libpng's default refuses images over a million pixels a side; the format allows 2^31 - 1.
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_infop info = png_create_info_struct(png);
  struct ReadStructs {
    png_structp png;
    png_infop info;
    ~ReadStructs() { png_destroy_read_struct(&png, &info, nullptr); }
  } structs{png, info};
  DPUNET_CHECK(info, path, ": libpng could not start");
  PngInfo header;
  DPUNET_CHECK(png_read_header(png, info, file.get(), role, &header), path, ": not a readable PNG (", error.message,
               ")");
  Image image;
  image.height = header.height;
  image.width = header.width;
  image.channels = header.channels;
  // A mask unpacked as stored keeps its file's depth: masks of one import must be alike.
  const bool unpacked_grey = header.channels == 1 && header.stored_bits < 8 && role == ImageRole::kLabels;
  image.bits = unpacked_grey ? header.stored_bits : header.bits;
  if (!with_pixels) return image;
  const size_t row_values = static_cast<size_t>(image.width * image.channels);
  const size_t value_bytes = static_cast<size_t>(header.bits / 8);
  std::vector<unsigned char> bytes(row_values * image.height * value_bytes);
  std::vector<png_bytep> rows(image.height);
  for (int64_t y = 0; y < image.height; ++y) rows[y] = bytes.data() + y * row_values * value_bytes;
  DPUNET_CHECK(png_read_rows(png, rows.data()), path, ": damaged PNG (", error.message, ")");
  image.values.resize(row_values * image.height);
  if (header.bits == 16) {
    std::copy_n(reinterpret_cast<const uint16_t*>(bytes.data()), image.values.size(), image.values.begin());
  } else {
    std::copy(bytes.begin(), bytes.end(), image.values.begin());
  }
  return image;
}

bool png_write_all(png_structp png, png_infop info, FILE* file, int64_t height, int64_t width, int64_t channels,
                   png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
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

namespace {

Image read_image_file(const std::string& path, ImageRole role, bool with_pixels) {
  const std::string ext = lower_extension(path);
  try {
    if (ext == ".png") return read_png(path, role, with_pixels);
    if (ext == ".tif" || ext == ".tiff") return read_tiff(path, role, with_pixels);
  } catch (const std::bad_alloc&) {
    DPUNET_FAIL(path, ": the image does not fit in memory (is its header damaged?)");
  }
  DPUNET_FAIL(path, ": unsupported image type '", ext, "' (expected .png, .tif or .tiff)");
}

}  // namespace

Image read_image(const std::string& path, ImageRole role) {
  return read_image_file(path, role, true);
}

Image read_image_header(const std::string& path, ImageRole role) {
  return read_image_file(path, role, false);
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
  DPUNET_CHECK(channels == 1 || channels == 3, path, ": PNG output needs 1 or 3 channels");
  std::vector<png_bytep> rows(height);
  for (int64_t y = 0; y < height; ++y) rows[y] = const_cast<uint8_t*>(values) + y * width * channels;
  File file(std::fopen(path.c_str(), "wb"));
  DPUNET_CHECK(file, path, ": cannot create (", std::strerror(errno), ")");
  PngError error;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_error_to_jump, png_ignore_warning);
  DPUNET_CHECK(png, path, ": libpng could not start");
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_infop info = png_create_info_struct(png);
  const bool ok = png_write_all(png, info, file.get(), height, width, channels, rows.data());
  png_destroy_write_struct(&png, &info);
  DPUNET_CHECK(ok, path, ": writing the PNG failed (", error.message, ")");
  DPUNET_CHECK(std::fflush(file.get()) == 0, path, ": writing the PNG failed (disk full?)");
}

}  // namespace dpunet::data
