// Folder import: PNG and TIFF, 8 and 16 bit (and low-bit grey PNG), grey and RGB; masks matched by name and
// mapped to classes; a seeded validation split; clear errors for what does not fit.
#include <png.h>
#include <tiffio.h>
#include "support/catch.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include "common/atomic_file.h"
#include "common/process_label.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/image_statistics.h"
#include "data/import.h"
#include "data/normalize.h"
#include "data/output_folder.h"
#include "support/image_files.h"
#include "support/temp_dir.h"

using dpunet::data::Image;
using dpunet::data::ImportOptions;
using dpunet::test::write_tiff16;

namespace {

Image make_image(int64_t size, int64_t channels, int seed, int bits = 8) {
  Image image;
  image.height = image.width = size;
  image.channels = channels;
  image.bits = bits;
  for (int64_t i = 0; i < size * size * channels; ++i) {
    image.values.push_back(static_cast<uint16_t>((i * 13 + seed * 31) % (bits == 16 ? 60000 : 250)));
  }
  return image;
}

// Grey mask with values 0 and 255 (left half 0, right half 255).
Image make_mask(int64_t size) {
  Image mask;
  mask.height = mask.width = size;
  mask.channels = 1;
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 0; x < size; ++x) mask.values.push_back(x < size / 2 ? 0 : 255);
  }
  return mask;
}

// A square PNG whose header `describe(png, info)` sets; its pixels, one byte each, are
// value(y, x), packed to fewer bits per pixel when the header says so, and interlaced
// when it says so (every row given once per pass).
template <typename Describe, typename Value>
void write_test_png(const std::string& path, int64_t size, Describe describe, Value value) {
  FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  describe(png, info);
  png_write_info(png, info);
  png_set_packing(png);  // rows given one byte per pixel (nothing to pack at 8 bits)
  const int passes = png_set_interlace_handling(png);
  std::vector<png_byte> row(static_cast<size_t>(size));
  for (int pass = 0; pass < passes; ++pass) {
    for (int64_t y = 0; y < size; ++y) {
      for (int64_t x = 0; x < size; ++x) row[x] = static_cast<png_byte>(value(y, x));
      png_write_row(png, row.data());
    }
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

// An 8-bit palette PNG with a transparency chunk: red, green (half-transparent at
// green_alpha 128), blue.
void write_palette_png(const std::string& path, int64_t size, png_byte green_alpha = 255) {
  const auto side = static_cast<png_uint_32>(size);
  const auto describe = [side, green_alpha](png_structp png, png_infop info) {
    png_set_IHDR(png, info, side, side, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color palette[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(png, info, palette, 3);
    png_byte alpha[3] = {255, green_alpha, 255};
    png_set_tRNS(png, info, alpha, 3, nullptr);
  };
  write_test_png(path, size, describe, [](int64_t y, int64_t x) { return (x + y) % 3; });
}

// A grey PNG of 1, 2 or 4 bits per pixel holding value(y, x).
template <typename Value>
void write_low_bit_png(const std::string& path, int64_t size, int bits, Value value) {
  const auto side = static_cast<png_uint_32>(size);
  const auto describe = [side, bits](png_structp png, png_infop info) {
    png_set_IHDR(png, info, side, side, bits, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
  };
  write_test_png(path, size, describe, value);
}

// make_mask's layout as a 1-bit PNG: left half 0, right half 1.
void write_one_bit_mask(const std::string& path, int64_t size) {
  write_low_bit_png(path, size, 1, [size](int64_t, int64_t x) { return x < size / 2 ? 0 : 1; });
}

struct Folders {
  dpunet::test::TempDir dir;
  ImportOptions options;
  Folders() {
    std::filesystem::create_directories(dir / "images");
    std::filesystem::create_directories(dir / "masks");
    options.images_dir = dir / "images";
    options.masks_dir = dir / "masks";
    options.out_dir = dir / "shards";
  }
  // Images img0.png ... of 16x16 pixels with make_mask(16) masks named img<i><suffix>.png.
  void add_pairs(int count, const std::string& mask_suffix = "") const {
    for (int i = 0; i < count; ++i) {
      const std::string name = "img" + std::to_string(i);
      dpunet::data::write_png(dir / ("images/" + name + ".png"), make_image(16, 1, i));
      dpunet::data::write_png(dir / ("masks/" + name + mask_suffix + ".png"), make_mask(16));
    }
  }
};

}  // namespace

TEST_CASE("image files round-trip through PNG and 16-bit TIFF", "[data]") {
  dpunet::test::TempDir dir;
  const Image rgb = make_image(9, 3, 1);
  dpunet::data::write_png(dir / "a.png", rgb);
  const Image back = dpunet::data::read_image(dir / "a.png");
  CHECK(back.channels == 3);
  CHECK(back.bits == 8);
  CHECK(back.values == rgb.values);
  const Image deep = make_image(7, 1, 2, 16);
  write_tiff16(dir / "b.tif", deep);
  const Image deep_back = dpunet::data::read_image(dir / "b.tif");
  CHECK(deep_back.bits == 16);
  CHECK(deep_back.values == deep.values);
  std::ofstream(dir / "c.png") << "not a png";
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "c.png"), HasSubstr(dir / "c.png") && HasSubstr("PNG"));
}

TEST_CASE("an image's header gives what reading it gives, but the pixels", "[data]") {
  dpunet::test::TempDir dir;
  dpunet::data::write_png(dir / "rgb.png", make_image(9, 3, 1));
  write_tiff16(dir / "deep.tif", make_image(7, 1, 2, 16));
  write_palette_png(dir / "palette.png", 4);
  write_low_bit_png(dir / "four.png", 4, 4, [](int64_t y, int64_t x) { return y * 4 + x; });
  using dpunet::data::ImageRole;
  for (const std::string name : {"rgb.png", "deep.tif", "palette.png", "four.png"}) {
    for (const ImageRole role : {ImageRole::kImage, ImageRole::kLabels}) {
      const Image read = dpunet::data::read_image(dir / name, role);
      const Image header = dpunet::data::read_image_header(dir / name, role);
      INFO(name << (role == ImageRole::kLabels ? " as labels" : " as an image"));
      CHECK(header.height == read.height);
      CHECK(header.width == read.width);
      CHECK(header.channels == read.channels);
      CHECK(header.bits == read.bits);
      CHECK(header.values.empty());
    }
  }
  std::ofstream(dir / "bad.png") << "not a png";
  CHECK_THROWS_WITH(dpunet::data::read_image_header(dir / "bad.png"), HasSubstr(dir / "bad.png"));
}

TEST_CASE("an image read a band of rows at a time gives what reading it whole gives", "[data]") {
  using dpunet::data::ImageRole;
  using dpunet::data::ImageRows;
  using dpunet::test::TiffLayout;
  using dpunet::test::write_tiff;
  dpunet::test::TempDir dir;
  dpunet::data::write_png(dir / "rgb.png", make_image(23, 3, 1));
  write_palette_png(dir / "palette.png", 11);
  // Adam7-interlaced: no row is whole before the last pass.
  const auto interlaced = [](png_structp png, png_infop info) {
    png_set_IHDR(png, info, 19, 19, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
  };
  write_test_png(dir / "interlaced.png", 19, interlaced, [](int64_t y, int64_t x) { return y * 13 + x; });
  const Image deinterlaced = dpunet::data::read_image(dir / "interlaced.png");
  REQUIRE(deinterlaced.values.size() == 19 * 19);
  for (int64_t p = 0; p < 19 * 19; ++p) REQUIRE(deinterlaced.values[p] == (p / 19) * 13 + p % 19);
  TiffLayout strips;  // deflate strips of 3 rows: read a row at a time, in order
  strips.samples = 3;
  strips.photometric = PHOTOMETRIC_RGB;
  strips.compression = COMPRESSION_ADOBE_DEFLATE;
  strips.rows_per_strip = 3;
  write_tiff(dir / "strips.tif", 23, 23, make_image(23, 3, 2).values, strips);
  TiffLayout tiled;  // 37 rows in tiles of 16: bands cross the tiles' rows, the last one overhangs
  tiled.bits = 16;
  tiled.tile = 16;
  tiled.photometric = PHOTOMETRIC_MINISWHITE;
  write_tiff(dir / "tiled.tif", 37, 37, make_image(37, 1, 3, 16).values, tiled);

  for (const std::string name : {"rgb.png", "palette.png", "interlaced.png", "strips.tif", "tiled.tif"}) {
    for (const ImageRole role : {ImageRole::kImage, ImageRole::kLabels}) {
      INFO(name << (role == ImageRole::kLabels ? " as labels" : " as an image"));
      const Image whole = dpunet::data::read_image(dir / name, role);
      ImageRows rows(dir / name, role);
      CHECK(rows.header().values.empty());
      CHECK((rows.header().height == whole.height && rows.header().width == whole.width &&
             rows.header().channels == whole.channels && rows.header().bits == whole.bits));
      const int64_t row_values = whole.width * whole.channels;
      std::vector<uint16_t> banded(whole.values.size());
      for (const int64_t count : {int64_t{1}, int64_t{7}, int64_t{0}, whole.height - 8}) {
        rows.read(count, banded.data() + rows.rows_read() * row_values);
      }
      CHECK(rows.rows_read() == whole.height);
      CHECK(banded == whole.values);
      CHECK_THROWS_WITH(rows.read(1, banded.data()),
                        HasSubstr(dir / name) && HasSubstr("asked of an image of " + std::to_string(whole.height)));
    }
  }

  // A reduced-resolution page before the image (as some scanners write a thumbnail) is
  // passed over: the image is the full page, not the 1x1 one.
  TiffLayout thumbnail_first;
  thumbnail_first.thumbnail_first = true;
  const Image grey = make_image(6, 1, 4);
  write_tiff(dir / "thumbnail_first.tif", 6, 6, grey.values, thumbnail_first);
  const Image full = dpunet::data::read_image(dir / "thumbnail_first.tif");
  CHECK((full.height == 6 && full.width == 6));
  CHECK(full.values == grey.values);
  CHECK(dpunet::data::read_image_header(dir / "thumbnail_first.tif").height == 6);

  // A file cut short names itself and the row where its pixels ran out.
  dpunet::data::write_png(dir / "long.png", make_image(64, 3, 5));
  std::ifstream in(dir / "long.png", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  dpunet::write_file_atomically(dir / "cut.png", bytes.substr(0, bytes.size() / 2));
  ImageRows cut(dir / "cut.png");
  std::vector<uint16_t> row(64 * 3);
  const auto read_all = [&] {
    while (cut.rows_read() < 64) cut.read(1, row.data());
  };
  CHECK_THROWS_WITH(read_all(), HasSubstr(dir / "cut.png") && HasSubstr("damaged PNG at row "));
}

TEST_CASE("a PNG over a million pixels wide (libpng's default limit) writes and reads back", "[data]") {
  dpunet::test::TempDir dir;
  Image wide;
  wide.height = 1;
  wide.width = 1100000;
  wide.channels = 1;
  for (int64_t x = 0; x < wide.width; ++x) wide.values.push_back(static_cast<uint16_t>(x % 251));
  dpunet::data::write_png(dir / "wide.png", wide);
  const Image back = dpunet::data::read_image(dir / "wide.png");
  CHECK(back.width == wide.width);
  CHECK(back.values == wide.values);
}

TEST_CASE("an interlaced PNG too large to address is refused by name, not wrapped round to a small buffer", "[data]") {
  // 16-bit RGBA at the format's sizes: 8 bytes a pixel, 2^64 and more in all.
  const size_t row_bytes = size_t{2147437309} * 8, height = 1073764994;
  CHECK_THROWS_WITH(dpunet::data::interlaced_png_bytes("big.png", row_bytes, height),
                    HasSubstr("big.png") && HasSubstr("more bytes than this machine can address"));
  CHECK(dpunet::data::interlaced_png_bytes("a.png", 3 * 640, 480) == 3 * 640 * 480);
  CHECK(dpunet::data::interlaced_png_bytes("a.png", 0, 480) == 0);
}

TEST_CASE("a PNG that fails while written leaves the earlier file of its name as it was", "[data]") {
  dpunet::test::TempDir dir;
  const std::string path = dir / "curves.png";
  dpunet::data::write_png(path, make_image(9, 3, 1));
  const std::string before = dpunet::read_file(path);
  // The rows' source fails half-way, as a read of a damaged input would.
  CHECK_THROWS_WITH(dpunet::data::write_png8_rows(path, 8, 8, 1,
                                                  [](int64_t y, uint8_t* row) {
                                                    if (y == 4) throw std::runtime_error("input went away");
                                                    std::fill(row, row + 8, uint8_t{7});
                                                  }),
                    HasSubstr("input went away"));
  CHECK(dpunet::read_file(path) == before);
  // Nor is its temporary left beside it.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
  // A whole write replaces it.
  dpunet::data::write_png8_rows(path, 8, 8, 1, [](int64_t, uint8_t* row) { std::fill(row, row + 8, uint8_t{7}); });
  CHECK(dpunet::data::read_image(path).height == 8);
}

TEST_CASE("a TIFF in a compression libtiff lacks is refused by name, not as damage", "[data]") {
  dpunet::test::TempDir dir;
  // A 4x4 8-bit grey TIFF marked JPEG 2000 (33005, as Aperio writes): header, 16 bytes of
  // "data", then one IFD of nine entries (tag, type 3 short / 4 long, count 1, value).
  std::string bytes = std::string("II*\0", 4);
  const auto put = [&bytes](uint32_t value, int size) {
    for (int i = 0; i < size; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xff);
  };
  put(8 + 16, 4);  // the IFD's offset
  bytes += std::string(16, '\0');
  const std::vector<std::array<uint32_t, 3>> entries = {{256, 3, 4},     {257, 3, 4}, {258, 3, 8},
                                                        {259, 3, 33005}, {262, 3, 1}, {273, 4, 8},
                                                        {277, 3, 1},     {278, 3, 4}, {279, 4, 16}};
  put(static_cast<uint32_t>(entries.size()), 2);
  for (const auto& [tag, type, value] : entries) {
    put(tag, 2);
    put(type, 2);
    put(1, 4);
    put(value, 4);  // a short sits in the first two bytes, little-endian
  }
  put(0, 4);  // no next IFD
  dpunet::write_file_atomically(dir / "slide.tif", bytes);
  CHECK_THROWS_WITH(
      dpunet::data::read_image(dir / "slide.tif"),
      HasSubstr(dir / "slide.tif") && HasSubstr("TIFF compression 33005 is not one this libtiff decodes"));
}

TEST_CASE(
    "TIFFs: tiles, white-is-zero, palettes, alpha and 1, 2 and 4-bit samples read as their images, and stacks and "
    "other colour models are refused by name",
    "[data]") {
  using dpunet::test::TiffLayout;
  using dpunet::test::write_tiff;
  dpunet::test::TempDir dir;
  const Image rgb = make_image(37, 3, 4, 16);  // 37: tiles of 16 overhang the edges
  TiffLayout tiled;
  tiled.bits = 16;
  tiled.samples = 3;
  tiled.photometric = PHOTOMETRIC_RGB;
  tiled.tile = 16;
  write_tiff(dir / "tiled.tif", 37, 37, rgb.values, tiled);
  const Image tiled_back = dpunet::data::read_image(dir / "tiled.tif");
  CHECK(tiled_back.channels == 3);
  CHECK(tiled_back.bits == 16);
  CHECK(tiled_back.values == rgb.values);

  const Image grey = make_image(5, 1, 2);
  TiffLayout white_is_zero;
  white_is_zero.photometric = PHOTOMETRIC_MINISWHITE;
  write_tiff(dir / "inverted.tif", 5, 5, grey.values, white_is_zero);
  const Image inverted = dpunet::data::read_image(dir / "inverted.tif");
  REQUIRE(inverted.values.size() == grey.values.size());
  for (size_t i = 0; i < grey.values.size(); ++i) CHECK(inverted.values[i] == 255 - grey.values[i]);

  TiffLayout palette;
  palette.photometric = PHOTOMETRIC_PALETTE;
  palette.colormap.assign(3 * 256, 0);
  palette.colormap[1] = 0xffff;        // entry 1: red
  palette.colormap[256 + 2] = 0x8000;  // entry 2: half green
  write_tiff(dir / "palette.tif", 1, 3, {0, 1, 2}, palette);
  const Image colours = dpunet::data::read_image(dir / "palette.tif");
  CHECK(colours.channels == 3);
  CHECK(colours.values == std::vector<uint16_t>{0, 0, 0, 255, 0, 0, 0, 128, 0});
  palette.colormap.assign(3 * 256, 0);  // an old writer's 8-bit colour map
  palette.colormap[1] = 255;
  palette.colormap[256 + 2] = 128;
  write_tiff(dir / "palette8.tif", 1, 3, {0, 1, 2}, palette);
  CHECK(dpunet::data::read_image(dir / "palette8.tif").values == colours.values);
  // Label masks keep their stored values: palette indices, and white-is-zero labels.
  const Image indices = dpunet::data::read_image(dir / "palette.tif", dpunet::data::ImageRole::kLabels);
  CHECK(indices.channels == 1);
  CHECK(indices.values == std::vector<uint16_t>{0, 1, 2});
  CHECK(dpunet::data::read_image(dir / "inverted.tif", dpunet::data::ImageRole::kLabels).values == grey.values);

  // Below 8 bits: a bilevel mask's labels are 0 and 1, its image black and white; a
  // 4-bit palette's indices or colours; rows packed, in strips and in tiles of 16 (the
  // 19-pixel rows end part way through a byte).
  std::vector<uint16_t> bilevel;
  for (int i = 0; i < 19 * 19; ++i) bilevel.push_back(static_cast<uint16_t>((i * 7 / 3) % 2));
  for (const int tile : {0, 16}) {
    TiffLayout one_bit;
    one_bit.bits = 1;
    one_bit.tile = tile;
    one_bit.compression = COMPRESSION_ADOBE_DEFLATE;
    write_tiff(dir / "bilevel.tif", 19, 19, bilevel, one_bit);
    const Image labels = dpunet::data::read_image(dir / "bilevel.tif", dpunet::data::ImageRole::kLabels);
    CHECK(labels.bits == 1);
    CHECK(labels.values == bilevel);
    const Image black_white = dpunet::data::read_image(dir / "bilevel.tif");
    CHECK(black_white.bits == 8);
    for (size_t i = 0; i < bilevel.size(); ++i) CHECK(black_white.values[i] == bilevel[i] * 255);
    one_bit.photometric = PHOTOMETRIC_MINISWHITE;  // as fax-style bilevel files store them
    write_tiff(dir / "bilevel-white.tif", 19, 19, bilevel, one_bit);
    const Image inverse = dpunet::data::read_image(dir / "bilevel-white.tif");
    for (size_t i = 0; i < bilevel.size(); ++i) CHECK(inverse.values[i] == (1 - bilevel[i]) * 255);
  }
  TiffLayout two_bit;
  two_bit.bits = 2;
  write_tiff(dir / "two-bit.tif", 1, 5, {0, 1, 2, 3, 2}, two_bit);
  CHECK(dpunet::data::read_image(dir / "two-bit.tif").values == std::vector<uint16_t>{0, 85, 170, 255, 170});
  TiffLayout four_bit_palette;
  four_bit_palette.bits = 4;
  four_bit_palette.photometric = PHOTOMETRIC_PALETTE;
  four_bit_palette.colormap.assign(3 * 16, 0);
  four_bit_palette.colormap[15] = 0xffff;      // entry 15: red
  four_bit_palette.colormap[16 + 3] = 0x8000;  // entry 3: half green
  write_tiff(dir / "palette4.tif", 1, 3, {15, 3, 0}, four_bit_palette);
  CHECK(dpunet::data::read_image(dir / "palette4.tif").values == std::vector<uint16_t>{255, 0, 0, 0, 128, 0, 0, 0, 0});
  CHECK(dpunet::data::read_image(dir / "palette4.tif", dpunet::data::ImageRole::kLabels).values ==
        std::vector<uint16_t>{15, 3, 0});

  TiffLayout with_alpha;
  with_alpha.samples = 2;
  with_alpha.extra = {EXTRASAMPLE_UNASSALPHA};
  write_tiff(dir / "alpha.tif", 1, 2, {10, 255, 20, 0}, with_alpha);
  const Image opaque = dpunet::data::read_image(dir / "alpha.tif");
  CHECK(opaque.channels == 1);
  CHECK(opaque.values == std::vector<uint16_t>{10, 20});

  TiffLayout planes;
  planes.planar = PLANARCONFIG_SEPARATE;  // one sample: the same as interleaved
  write_tiff(dir / "planar.tif", 5, 5, grey.values, planes);
  CHECK(dpunet::data::read_image(dir / "planar.tif").values == grey.values);

  TiffLayout upright, turned;
  upright.orientation = ORIENTATION_TOPLEFT;
  write_tiff(dir / "upright.tif", 5, 5, grey.values, upright);
  CHECK(dpunet::data::read_image(dir / "upright.tif").values == grey.values);
  turned.orientation = ORIENTATION_BOTRIGHT;  // shown turned by 180 degrees
  write_tiff(dir / "turned.tif", 5, 5, grey.values, turned);
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "turned.tif"),
                    HasSubstr(dir / "turned.tif") && HasSubstr("TIFF orientation 3"));

  TiffLayout stack;
  stack.pages = 3;
  write_tiff(dir / "stack.tif", 5, 5, grey.values, stack);
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "stack.tif"),
                    HasSubstr(dir / "stack.tif") && HasSubstr("a TIFF of 3 pages"));
  {
    // A stack cut short: the first page's link to the next leads past the end of the
    // file. libtiff ends its page list there as at a real end: not taken for one page.
    std::string bytes = dpunet::read_file(dir / "stack.tif");
    REQUIRE(bytes.compare(0, 2, "II") == 0);  // little-endian, as libtiff writes here
    auto u32 = [&](size_t at) {
      return static_cast<uint32_t>(static_cast<unsigned char>(bytes[at])) |
             static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 8 |
             static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 2])) << 16 |
             static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 3])) << 24;
    };
    const uint32_t first = u32(4);
    const uint32_t entries = static_cast<unsigned char>(bytes[first]) | static_cast<unsigned char>(bytes[first + 1])
                                                                            << 8;
    const size_t next = first + 2 + 12 * entries;
    REQUIRE(u32(next) != 0);
    bytes.replace(next, 4, std::string("\x00\xff\xff\xff", 4));
    dpunet::write_file_atomically(dir / "cut.tif", bytes);
    for (const bool header_only : {false, true}) {
      INFO("header only: " << header_only);
      CHECK_THROWS_WITH(
          header_only ? dpunet::data::read_image_header(dir / "cut.tif") : dpunet::data::read_image(dir / "cut.tif"),
          HasSubstr(dir / "cut.tif") && HasSubstr("a damaged TIFF") && HasSubstr("page 2"));
    }
  }
  stack.thumbnail = true;  // a full page and two overviews: one image
  write_tiff(dir / "overviews.tif", 5, 5, grey.values, stack);
  CHECK(dpunet::data::read_image(dir / "overviews.tif").values == grey.values);
  TiffLayout untagged_alpha;  // RGBA without an ExtraSamples tag: the fourth is alpha
  untagged_alpha.samples = 4;
  untagged_alpha.photometric = PHOTOMETRIC_RGB;
  write_tiff(dir / "rgba.tif", 1, 1, {1, 2, 3, 99}, untagged_alpha);
  CHECK(dpunet::data::read_image(dir / "rgba.tif").values == std::vector<uint16_t>{1, 2, 3});
  TiffLayout two_channels;
  two_channels.samples = 2;
  two_channels.extra = {EXTRASAMPLE_UNSPECIFIED};
  write_tiff(dir / "two.tif", 1, 2, {1, 2, 3, 4}, two_channels);
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "two.tif"),
                    HasSubstr(dir / "two.tif") && HasSubstr("not marked as alpha"));
  TiffLayout ycbcr;
  ycbcr.samples = 3;
  ycbcr.photometric = PHOTOMETRIC_YCBCR;
  write_tiff(dir / "ycbcr.tif", 2, 2, std::vector<uint16_t>(12, 7), ycbcr);
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "ycbcr.tif"),
                    HasSubstr(dir / "ycbcr.tif") && HasSubstr("colour model 6"));
  // JPEG's YCbCr (most JPEG TIFFs, slides' tiles) reads as the RGB it was made from, to
  // JPEG's loss, in tiles and in strips.
  Image smooth;  // gradients: what JPEG keeps close
  smooth.height = smooth.width = 32;
  smooth.channels = 3;
  for (int64_t y = 0; y < 32; ++y) {
    for (int64_t x = 0; x < 32; ++x) {
      for (int64_t c = 0; c < 3; ++c) smooth.values.push_back(static_cast<uint16_t>(20 + 3 * x + 2 * y + 20 * c));
    }
  }
  TiffLayout jpeg;
  jpeg.samples = 3;
  jpeg.photometric = PHOTOMETRIC_YCBCR;
  jpeg.compression = COMPRESSION_JPEG;
  for (const int tile : {16, 0}) {
    INFO("tile " << tile);
    jpeg.tile = tile;
    jpeg.rows_per_strip = tile == 0 ? 16 : 0;
    write_tiff(dir / "jpeg.tif", 32, 32, smooth.values, jpeg);
    const Image decoded = dpunet::data::read_image(dir / "jpeg.tif");
    REQUIRE(decoded.channels == 3);
    REQUIRE(decoded.values.size() == smooth.values.size());
    int worst = 0;
    for (size_t i = 0; i < smooth.values.size(); ++i) {
      worst = std::max(worst, std::abs(int(decoded.values[i]) - int(smooth.values[i])));
    }
    CHECK(worst <= 12);
    const Image header = dpunet::data::read_image_header(dir / "jpeg.tif");
    CHECK((header.channels == 3 && header.bits == 8));
  }
  // Their headers say what reading gives, and refuse what reading refuses.
  for (const std::string name : {"tiled.tif", "inverted.tif", "palette.tif", "alpha.tif", "overviews.tif", "rgba.tif",
                                 "bilevel.tif", "palette4.tif"}) {
    for (const auto role : {dpunet::data::ImageRole::kImage, dpunet::data::ImageRole::kLabels}) {
      if ((name == "alpha.tif" || name == "rgba.tif") && role == dpunet::data::ImageRole::kLabels) {
        // They hold transparent pixels: as masks, refused (their headers are not).
        CHECK_THROWS_WITH(dpunet::data::read_image(dir / name, role), HasSubstr("a transparent pixel in a mask"));
        continue;
      }
      const Image read = dpunet::data::read_image(dir / name, role),
                  header = dpunet::data::read_image_header(dir / name, role);
      INFO(name);
      CHECK((header.height == read.height && header.width == read.width && header.channels == read.channels &&
             header.bits == read.bits));
    }
  }
  for (const std::string name : {"stack.tif", "two.tif", "ycbcr.tif"}) {
    CHECK_THROWS_WITH(dpunet::data::read_image_header(dir / name), HasSubstr(dir / name));
  }
}

TEST_CASE("a palette PNG with transparency reads as RGB, its alpha dropped", "[data]") {
  dpunet::test::TempDir dir;
  write_palette_png(dir / "p.png", 4, /*green_alpha=*/128);
  const Image image = dpunet::data::read_image(dir / "p.png");
  REQUIRE(image.channels == 3);
  CHECK(image.bits == 8);
  // Pixel (0, 1) is palette entry 1: green.
  CHECK(image.values[3] == 0);
  CHECK(image.values[4] == 255);
  CHECK(image.values[5] == 0);
  // As a mask, its half-transparent index is refused (a pixel nobody labelled?).
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "p.png", dpunet::data::ImageRole::kLabels),
                    HasSubstr("a transparent pixel in a mask (row 0, column 1, alpha 128"));
  // Opaque, its palette indices are its labels, as a palette TIFF mask's are.
  write_palette_png(dir / "p.png", 4);
  const Image labels = dpunet::data::read_image(dir / "p.png", dpunet::data::ImageRole::kLabels);
  REQUIRE(labels.channels == 1);
  CHECK(labels.bits == 8);
  std::vector<uint16_t> indices;
  for (int64_t y = 0; y < 4; ++y) {
    for (int64_t x = 0; x < 4; ++x) indices.push_back(static_cast<uint16_t>((x + y) % 3));
  }
  CHECK(labels.values == indices);
}

namespace {

// A grey+alpha PNG mask: value 255 on the right half, alpha(y, x).
template <typename Alpha>
void write_grey_alpha_png(const std::string& path, int64_t size, Alpha alpha) {
  FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(size), static_cast<png_uint_32>(size), 8, PNG_COLOR_TYPE_GRAY_ALPHA,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_byte> row(static_cast<size_t>(2 * size));
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 0; x < size; ++x) {
      row[2 * x] = x < size / 2 ? 0 : 255;
      row[2 * x + 1] = static_cast<png_byte>(alpha(y, x));
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

}  // namespace

TEST_CASE("a mask's alpha must be opaque: a transparent pixel is not taken for a label", "[data]") {
  dpunet::test::TempDir dir;
  write_grey_alpha_png(dir / "opaque.png", 6, [](int64_t, int64_t) { return 255; });
  const Image opaque = dpunet::data::read_image(dir / "opaque.png", dpunet::data::ImageRole::kLabels);
  CHECK(opaque.channels == 1);
  CHECK(opaque.values == make_mask(6).values);
  write_grey_alpha_png(dir / "clear.png", 6, [](int64_t y, int64_t x) { return y == 4 && x == 1 ? 0 : 255; });
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "clear.png", dpunet::data::ImageRole::kLabels),
                    HasSubstr(dir / "clear.png") && HasSubstr("a transparent pixel in a mask (row 4, column 1") &&
                        HasSubstr("VALUE=ignore"));
  // As an image, its alpha is dropped as before.
  CHECK(dpunet::data::read_image(dir / "clear.png").channels == 1);
  // A grey mask whose transparency chunk makes the value 7 clear: refused where 7 is.
  const auto keyed = [](png_structp png, png_infop info) {
    png_set_IHDR(png, info, 4, 4, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color_16 clear{};
    clear.gray = 7;
    png_set_tRNS(png, info, nullptr, 0, &clear);
  };
  write_test_png(dir / "keyed.png", 4, keyed, [](int64_t y, int64_t x) { return y == 2 && x == 3 ? 7 : 1; });
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "keyed.png", dpunet::data::ImageRole::kLabels),
                    HasSubstr("a transparent pixel in a mask (row 2, column 3"));
  write_test_png(dir / "keyed.png", 4, keyed, [](int64_t, int64_t) { return 1; });
  CHECK(dpunet::data::read_image(dir / "keyed.png", dpunet::data::ImageRole::kLabels).values.size() == 16);
  // A TIFF mask's alpha sample likewise.
  std::vector<uint16_t> values;
  for (int64_t p = 0; p < 36; ++p) {
    values.push_back(p % 6 < 3 ? 0 : 255);
    values.push_back(p == 7 ? 10 : 255);
  }
  dpunet::test::TiffLayout grey_alpha;
  grey_alpha.samples = 2;
  grey_alpha.extra = {2};  // EXTRASAMPLE_UNASSALPHA
  dpunet::test::write_tiff(dir / "clear.tif", 6, 6, values, grey_alpha);
  CHECK_THROWS_WITH(dpunet::data::read_image(dir / "clear.tif", dpunet::data::ImageRole::kLabels),
                    HasSubstr("a transparent pixel in a mask (row 1, column 1, alpha 10"));
  CHECK(dpunet::data::read_image(dir / "clear.tif").channels == 1);
}

TEST_CASE("a 4-bit palette PNG mask keeps its indices, its image its colours", "[data]") {
  dpunet::test::TempDir dir;
  const auto describe = [](png_structp png, png_infop info) {
    png_set_IHDR(png, info, 5, 5, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    std::vector<png_color> palette(16, png_color{0, 0, 0});
    palette[9] = {10, 20, 30};
    png_set_PLTE(png, info, palette.data(), 16);
  };
  write_test_png(dir / "p4.png", 5, describe, [](int64_t y, int64_t x) { return (y * 5 + x) % 2 == 0 ? 9 : 2; });
  const Image labels = dpunet::data::read_image(dir / "p4.png", dpunet::data::ImageRole::kLabels);
  REQUIRE(labels.channels == 1);
  CHECK(labels.bits == 4);
  CHECK(labels.values[0] == 9);
  CHECK(labels.values[1] == 2);
  const Image image = dpunet::data::read_image(dir / "p4.png");
  REQUIRE(image.channels == 3);
  CHECK(std::vector<uint16_t>(image.values.begin(), image.values.begin() + 3) == std::vector<uint16_t>{10, 20, 30});
}

TEST_CASE("a low-bit grey PNG reads scaled to 8 bits as an image and as stored as a mask", "[data]") {
  dpunet::test::TempDir dir;
  write_low_bit_png(dir / "four.png", 4, 4, [](int64_t y, int64_t x) { return y * 4 + x; });
  const Image image = dpunet::data::read_image(dir / "four.png");
  const Image labels = dpunet::data::read_image(dir / "four.png", dpunet::data::ImageRole::kLabels);
  CHECK(image.bits == 8);
  CHECK(labels.bits == 4);
  REQUIRE(image.values.size() == 16);
  REQUIRE(labels.values.size() == 16);
  for (uint16_t v = 0; v < 16; ++v) {
    CHECK(image.values[v] == v * 17);  // 4 bits to 8: 15 becomes 255
    CHECK(labels.values[v] == v);
  }
  write_one_bit_mask(dir / "one.png", 16);
  const Image mask = dpunet::data::read_image(dir / "one.png", dpunet::data::ImageRole::kLabels);
  CHECK(mask.bits == 1);
  CHECK(mask.values[0] == 0);
  CHECK(mask.values[15] == 1);
  CHECK(dpunet::data::read_image(dir / "one.png").values[15] == 255);
}

TEST_CASE("import maps a 1-bit mask's values 0 and 1, and refuses one beside 8-bit masks", "[data]") {
  Folders f;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "img" + std::to_string(i) + ".png";
    dpunet::data::write_png(f.dir / ("images/" + name), make_image(16, 1, i));
    write_one_bit_mask(f.dir / ("masks/" + name), 16);
  }
  SECTION("all masks 1-bit: the values found are 0 and 1") {
    const auto result = dpunet::data::import_image_folders(f.options);
    CHECK(result.mask_mapping.class_of_value == std::map<uint32_t, int>{{0, 0}, {1, 1}});
    std::vector<uint8_t> image(256), mask(256);
    dpunet::data::Dataset(f.dir / "shards/train-*.h5").read(0, image.data(), mask.data());
    CHECK(mask[0] == 0);
    CHECK(mask[15] == 1);
  }
  SECTION("an 8-bit mask among them: its 255 and their 1 may be one label, or two") {
    dpunet::data::write_png(f.dir / "images/img3.png", make_image(16, 1, 3));
    dpunet::data::write_png(f.dir / "masks/img3.png", make_mask(16));
    CHECK_THROWS_WITH(
        dpunet::data::import_image_folders(f.options),
        HasSubstr("masks/img0.png is a grey 1-bit mask but") && HasSubstr("masks/img3.png a grey 8-bit one"));
  }
}

TEST_CASE("import pairs images with masks, maps mask values to classes and splits off validation", "[data]") {
  Folders f;
  f.add_pairs(10, "_mask");
  // What a copy from a Mac leaves beside each file: hidden, passed over (it has no mask).
  std::ofstream(f.dir / "images/._img0.png") << "resource data";
  f.options.mask_suffix = "_mask";
  f.options.val_fraction = 0.2;
  f.options.samples_per_shard = 3;
  f.options.seed = 5;
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.train_samples == 8);
  CHECK(result.val_samples == 2);
  CHECK(result.train_shards.size() == 3);
  CHECK(result.mask_mapping.class_of_value == std::map<uint32_t, int>{{0, 0}, {255, 1}});
  CHECK_FALSE(result.mask_mapping.colours);
  CHECK(dpunet::data::mask_key_text(255, result.mask_mapping.colours) == "255");
  const dpunet::data::Dataset train(f.dir / "shards/train-*.h5");
  const dpunet::data::Dataset val(f.dir / "shards/val-*.h5");
  CHECK(train.size() == 8);
  CHECK(val.size() == 2);
  CHECK(train.header().n_classes == 2);
  std::vector<uint8_t> image(256), mask(256);
  train.read(0, image.data(), mask.data());
  CHECK(mask[0] == 0);
  CHECK(mask[15] == 1);
  // The same seed picks the same validation images.
  f.options.out_dir = f.dir / "again";
  dpunet::data::import_image_folders(f.options);
  std::vector<uint8_t> image2(256), mask2(256);
  dpunet::data::Dataset(f.dir / "again/val-*.h5").read(1, image2.data(), mask2.data());
  val.read(1, image.data(), mask.data());
  CHECK(image == image2);
  // Importing into a folder with shards again is refused until asked to overwrite; then
  // only the new shards remain (the old third training shard is gone).
  f.options.out_dir = f.dir / "shards";
  f.options.samples_per_shard = 8;
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                    HasSubstr("already holds 4 shard(s)") && HasSubstr("--overwrite"));
  CHECK(std::filesystem::exists(f.dir / "shards/train-00002.h5"));
  f.options.overwrite = true;
  CHECK(dpunet::data::import_image_folders(f.options).train_shards.size() == 1);
  CHECK_FALSE(std::filesystem::exists(f.dir / "shards/train-00002.h5"));
  CHECK(dpunet::data::Dataset(f.dir / "shards/train-*.h5").size() == 8);
}

TEST_CASE("import --folds deals the pairs into equal, disjoint folds that globs select", "[data]") {
  Folders f;
  f.add_pairs(10);
  f.options.folds = 3;
  f.options.seed = 2;
  f.options.samples_per_shard = 2;
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.fold_samples == std::vector<int64_t>{4, 3, 3});
  CHECK(result.fold_shards.size() == 3);
  CHECK(result.fold_shards[0].size() == 2);
  CHECK(result.train_shards.empty());
  // Every image is in exactly one fold (pixel 0 of image i is 31 i: all differ).
  const auto first_pixels = [](const std::string& spec) {
    const dpunet::data::Dataset dataset(spec);
    std::multiset<int> values;
    std::vector<uint8_t> image(256), mask(256);
    for (int64_t i = 0; i < dataset.size(); ++i) {
      dataset.read(i, image.data(), mask.data());
      values.insert(image[0]);
    }
    return values;
  };
  std::multiset<int> all;
  for (int k = 0; k < 3; ++k) {
    const auto fold = first_pixels(f.dir / ("shards/fold" + std::to_string(k) + "-*.h5"));
    all.insert(fold.begin(), fold.end());
  }
  CHECK(all.size() == 10);
  CHECK(std::set<int>(all.begin(), all.end()).size() == 10);
  // Fold 0 trains on the others.
  CHECK(dpunet::data::Dataset(f.dir / "shards/fold[!0]-*.h5").size() == 6);
  // The same seed deals the same folds.
  f.options.out_dir = f.dir / "again";
  dpunet::data::import_image_folders(f.options);
  CHECK(first_pixels(f.dir / "again/fold1-*.h5") == first_pixels(f.dir / "shards/fold1-*.h5"));
  // Fewer folds over more: refused, then with --overwrite fold 2 is gone, not left to
  // join fold[!0]-*.h5.
  f.options.folds = 2;
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("--overwrite"));
  f.options.overwrite = true;
  dpunet::data::import_image_folders(f.options);
  CHECK_FALSE(std::filesystem::exists(f.dir / "again/fold2-00000.h5"));
  CHECK(dpunet::data::Dataset(f.dir / "again/fold[!0]-*.h5").size() == 5);
  // Bad fold counts.
  f.options.folds = 11;
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("folds must be in [2, 10], got 11"));
  f.options.folds = 2;
  f.options.val_fraction = 0.2;
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("exclude each other"));
}

TEST_CASE("import reads 16-bit RGB TIFFs and colour masks", "[data]") {
  Folders f;
  Image colour_mask = make_mask(8);
  colour_mask.channels = 3;
  colour_mask.values.clear();
  for (int64_t p = 0; p < 64; ++p) {
    const bool red = p % 8 >= 4;
    colour_mask.values.insert(colour_mask.values.end(), {uint16_t(red ? 255 : 0), 0, 0});
  }
  for (int i = 0; i < 2; ++i) {
    write_tiff16(f.dir / ("images/t" + std::to_string(i) + ".tif"), make_image(8, 3, i, 16));
    dpunet::data::write_png(f.dir / ("masks/t" + std::to_string(i) + ".png"), colour_mask);
  }
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("#000000=0,#ff0000=2");
  f.options.class_names = {"bg", "unused", "red"};
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.mask_mapping.colours);  // the mapping is printed as --mask-map takes it
  CHECK(dpunet::data::mask_key_text(0xff0000, result.mask_mapping.colours) == "#ff0000");
  const dpunet::data::Dataset dataset(f.options.out_dir);
  CHECK(dataset.header().pixel_type == dpunet::data::PixelType::kUInt16);
  CHECK(dataset.header().channels == 3);
  CHECK(dataset.header().n_classes == 3);
  std::vector<uint16_t> image(3 * 64);
  std::vector<uint8_t> mask(64);
  dataset.read(1, image.data(), mask.data());
  const Image expected = make_image(8, 3, 1, 16);
  CHECK(image[64 + 5] == expected.values[5 * 3 + 1]);  // channel 1 of pixel 5, now planar
  CHECK(mask[3] == 0);
  CHECK(mask[4] == 2);
}

TEST_CASE("palette PNG masks import as their indices, and a colour mapping for them says why it does not fit",
          "[data]") {
  Folders f;
  for (int i = 0; i < 2; ++i) {
    dpunet::data::write_png(f.dir / ("images/p" + std::to_string(i) + ".png"), make_image(4, 1, i));
    write_palette_png(f.dir / ("masks/p" + std::to_string(i) + ".png"), 4);  // indices (x + y) % 3
  }
  // Refused before any value is looked up: a grey value may match a colour by chance (2
  // is #000002), and would be mapped without a word.
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("#000000=0,#000001=1,#000002=2");
  CHECK(f.options.mask_mapping.colours);
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                    HasSubstr("masks/p0.png: the mask mapping names colours (#rrggbb), but this mask is grey") &&
                        HasSubstr("palette indices"));
  f.options.mask_mapping = {};  // the indices, found
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK_FALSE(result.mask_mapping.colours);
  CHECK(result.mask_mapping.class_of_value == std::map<uint32_t, int>{{0, 0}, {1, 1}, {2, 2}});
}

TEST_CASE("a mask value mapped to ignore becomes the shards' ignore label", "[data]") {
  Folders f;
  Image mask = make_mask(8);                                 // left 0, right 255
  for (int64_t y = 0; y < 8; ++y) mask.values[y * 8] = 128;  // first column: unlabelled
  dpunet::data::write_png(f.dir / "images/a.png", make_image(8, 1, 0));
  dpunet::data::write_png(f.dir / "masks/a.png", mask);
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=1,128=ignore");
  CHECK(f.options.mask_mapping.class_of_value.at(128) == dpunet::data::kIgnoreClass);
  CHECK(f.options.mask_mapping.text() == "0=0,128=ignore,255=1");
  dpunet::data::import_image_folders(f.options);
  const dpunet::data::Dataset dataset(f.options.out_dir);
  CHECK(dataset.header().n_classes == 2);
  CHECK(dataset.header().ignore_label == dpunet::data::kDefaultIgnoreLabel);
  std::vector<uint8_t> image(64), classes(64);
  dataset.read(0, image.data(), classes.data());
  CHECK(classes[0] == dpunet::data::kDefaultIgnoreLabel);
  CHECK(classes[1] == 0);
  CHECK(classes[7] == 1);
  // Without an ignore value the shards have no ignore label.
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=1,128=0");
  f.options.overwrite = true;
  const auto mapped = dpunet::data::import_image_folders(f.options);
  CHECK(mapped.note.empty());
  CHECK(dpunet::data::Dataset(f.options.out_dir).header().ignore_label == -1);
  // A mapping that leaves a class without a value imports, and says so.
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=ignore,128=ignore");
  CHECK(dpunet::data::import_image_folders(f.options).note ==
        "no mask value is mapped to class 1 of the 2 (--mask-map 0=0,128=ignore,255=ignore): the model gets an output "
        "no pixel teaches");
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=3,128=ignore");
  CHECK_THAT(dpunet::data::import_image_folders(f.options).note, HasSubstr("mapped to classes 1, 2 of the 4 ("));
  // Masks found to hold a single value: said too.
  Image empty = make_mask(8);
  std::fill(empty.values.begin(), empty.values.end(), 0);
  dpunet::data::write_png(f.dir / "masks/a.png", empty);
  f.options.mask_mapping = {};
  CHECK(dpunet::data::import_image_folders(f.options).note ==
        "the masks hold one value only (--mask-map 0=0): class 1 of the 2 has no pixel");
  // Class ids must leave the ignore label free.
  CHECK_THROWS_WITH(dpunet::data::parse_mask_mapping("0=0,1=255,2=ignore"),
                    HasSubstr("below 255") && HasSubstr("0=0,1=255,2=ignore"));
}

TEST_CASE("import errors name the file at fault", "[data]") {
  Folders f;
  dpunet::data::write_png(f.dir / "images/a.png", make_image(8, 1, 0));
  dpunet::data::write_png(f.dir / "masks/a.png", make_mask(8));
  SECTION("two images by one name") {
    // a.tif's mask would be found as a.png's: one of them would learn the other's labels.
    write_tiff16(f.dir / "images/a.tif", make_image(8, 1, 1, 16));
    dpunet::data::write_png(f.dir / "masks/a.tif", make_mask(8));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("images/a.png and ") && HasSubstr("images/a.tif") &&
                          HasSubstr("share the name 'a', by which an image's mask is found"));
  }
  SECTION("one mask by two spellings (a case-insensitive filesystem, a link)") {
    std::filesystem::create_symlink("a.png", f.dir / "masks/a.PNG");
    CHECK(dpunet::data::import_image_folders(f.options).train_samples == 1);
  }
  SECTION("two masks by one name") {
    write_tiff16(f.dir / "masks/a.tif", make_image(8, 1, 1, 16));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("images/a.png: both ") && HasSubstr("masks/a.png and ") &&
                          HasSubstr("masks/a.tif are named as its mask"));
  }
  SECTION("an image too large to be one sample, found from its header") {
    // A header of 70000 x 70000 grey pixels over one byte of data: never decoded.
    for (const char* name : {"images/big.tif", "masks/big.tif"}) {
      TIFF* tiff = TIFFOpen((f.dir / name).c_str(), "w");
      REQUIRE(tiff != nullptr);
      TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, 70000);
      TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, 70000);
      TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 8);
      TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 1);
      TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_DEFLATE);
      TIFFSetField(tiff, TIFFTAG_ROWSPERSTRIP, 70000);
      char byte = 0;
      TIFFWriteRawStrip(tiff, 0, &byte, 1);
      TIFFClose(tiff);
    }
    std::filesystem::remove(f.dir / "images/a.png");
    std::filesystem::remove(f.dir / "masks/a.png");
    CHECK_THROWS_WITH(
        dpunet::data::import_image_folders(f.options),
        HasSubstr("images/big.tif is 70000x70000x1 (4.5") && HasSubstr("cut the images into tiles with --tile"));
    f.options.tile = 66000;  // 4.06 GiB
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("--tile 66000: a tile of ") && HasSubstr("give a smaller --tile"));
  }
  SECTION("a missing mask") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("b.png") && HasSubstr("no mask"));
  }
  SECTION("a mask named with a suffix not given") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    dpunet::data::write_png(f.dir / "masks/b_mask.png", make_mask(8));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("no mask named b.png") && HasSubstr("there is b_mask.png: --mask-suffix _mask?"));
  }
  SECTION("a longer name that only starts like the image's is no mask of it") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    dpunet::data::write_png(f.dir / "masks/b0.png", make_mask(8));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("no mask named b.png") && !HasSubstr("--mask-suffix"));
  }
  SECTION("a mask whose extension is in another case") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    dpunet::data::write_png(f.dir / "masks/b.pNg", make_mask(8));
    CHECK(dpunet::data::import_image_folders(f.options).train_samples == 2);
  }
  SECTION("16-bit colours that differ only in their low bytes") {
    std::filesystem::remove(f.dir / "masks/a.png");
    Image colours = make_image(8, 3, 0, 16);
    std::fill(colours.values.begin(), colours.values.end(), 0);
    colours.values[0] = 0x0100;  // pixel (0, 0): red 0x0100, pixel (0, 1): red 0x0101, one key #010000
    colours.values[3] = 0x0101;
    write_tiff16(f.dir / "masks/a.tif", colours);
    f.options.mask_mapping = dpunet::data::parse_mask_mapping("#000000=0,#010000=1");
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/a.tif: 16-bit colours that differ only in their low bytes"));
  }
  SECTION("images of different sizes") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(10, 1, 1));
    dpunet::data::write_png(f.dir / "masks/b.png", make_mask(10));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("a.png") && HasSubstr("b.png") && HasSubstr("crop or resize"));
  }
  SECTION("grey and colour images of one size") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 3, 1));
    dpunet::data::write_png(f.dir / "masks/b.png", make_mask(8));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("8x8x3") && HasSubstr("convert them to one channel count"));
  }
  SECTION("a mask value without a class") {
    f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0");
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/a.png") && HasSubstr("mask value 255"));
  }
  SECTION("grey values mapped for colour masks") {
    Image colour = make_image(8, 3, 0);
    std::fill(colour.values.begin(), colour.values.end(), 0);
    colour.values[2] = 255;  // pixel (0, 0) blue: key 255, as grey 255 would be
    dpunet::data::write_png(f.dir / "masks/a.png", colour);
    f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=1");
    CHECK_FALSE(f.options.mask_mapping.colours);
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/a.png: the mask mapping names grey values, but this mask is in colour"));
  }
  SECTION("a malformed mapping") {
    CHECK_THROWS_WITH(dpunet::data::parse_mask_mapping("0=0,red"), HasSubstr("'red'"));
    // Each would read as another mapping than the one meant, if read at all.
    for (const char* item : {"-1=0", "255x=1", "255=1.5", "1=-1", "70000=1", "1=256", "#ff00=1", "#gg0000=1", " 1=1"}) {
      INFO(item);
      CHECK_THROWS_WITH(dpunet::data::parse_mask_mapping(std::string("0=0,") + item),
                        HasSubstr(std::string("'") + item + "' is not VALUE=CLASS"));
    }
    CHECK_THROWS_WITH(dpunet::data::parse_mask_mapping("0=0,255=1,255=2"), HasSubstr("255 is mapped twice"));
    CHECK_THROWS_WITH(dpunet::data::parse_mask_mapping("0=0,#ff0000=1"),
                      HasSubstr("give grey values or #rrggbb colours, not both"));
    CHECK(dpunet::data::parse_mask_mapping("65535=1").class_of_value.at(65535) == 1);
    CHECK(dpunet::data::parse_mask_mapping("#FFffFF=2").class_of_value.at(0xffffff) == 2);
  }
}

TEST_CASE("import holds every set to one image layout and one kind of mask", "[data]") {
  Folders f;
  f.options.folds = 2;  // one image per fold: each set alone would pass
  dpunet::data::write_png(f.dir / "images/a.png", make_image(8, 1, 0));
  dpunet::data::write_png(f.dir / "masks/a.png", make_mask(8));
  SECTION("an image of another channel count in the other fold") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 3, 1));
    dpunet::data::write_png(f.dir / "masks/b.png", make_mask(8));
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("images/a.png is 8x8x1") && HasSubstr("images/b.png is 8x8x3"));
  }
  SECTION("a colour mask beside grey ones") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    Image colour = make_image(8, 3, 0);
    std::fill(colour.values.begin(), colour.values.end(), 255);
    dpunet::data::write_png(f.dir / "masks/b.png", colour);
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/a.png is a grey 8-bit mask but") &&
                          HasSubstr("masks/b.png a colour 8-bit one") && HasSubstr("save all masks alike"));
  }
  SECTION("a palette mask beside grey ones: its indices are not grey values") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    write_palette_png(f.dir / "masks/b.png", 8);
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/a.png is a grey 8-bit mask but") &&
                          HasSubstr("masks/b.png a grey 8-bit (palette indices) one"));
  }
  SECTION("a white-is-zero TIFF mask beside grey ones: its values run the other way") {
    dpunet::data::write_png(f.dir / "images/b.png", make_image(8, 1, 1));
    const Image mask = make_mask(8);
    dpunet::test::TiffLayout white_is_zero;
    white_is_zero.photometric = 0;
    dpunet::test::write_tiff(f.dir / "masks/b.tif", 8, 8, mask.values, white_is_zero);
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("masks/b.tif a grey 8-bit (white-is-zero) one"));
  }
  CHECK_FALSE(std::filesystem::exists(f.dir / "shards"));
}

TEST_CASE("import refuses a link to a missing image instead of leaving the image out", "[data]") {
  Folders f;
  f.add_pairs(1);
  std::filesystem::create_symlink("/nonexistent/b.png", f.dir / "images/b.png");
  dpunet::data::write_png(f.dir / "masks/b.png", make_mask(16));
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                    HasSubstr("images/b.png: a link to /nonexistent/b.png, which does not exist"));
}

TEST_CASE("import says when the classes it found look like a resize's blended edges", "[data]") {
  Folders f;
  f.options.val_fraction = 0;
  f.add_pairs(1);  // 0 and 255: a binary mask, no note
  CHECK(dpunet::data::import_image_folders(f.options).note.empty());
  Image blended = make_mask(16);
  blended.values[0] = 37;
  blended.values[1] = 201;
  dpunet::data::write_png(f.dir / "images/b.png", make_image(16, 1, 3));
  dpunet::data::write_png(f.dir / "masks/b.png", blended);
  f.options.overwrite = true;
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.mask_mapping.classes() == 4);
  CHECK_THAT(result.note, HasSubstr("the masks hold 4 values, each taken for a class") &&
                              HasSubstr("nearest-neighbour") && HasSubstr("--mask-map"));
  // Labels 0..K-1 are labels, however many, and so are they beside an unlabelled 255
  // (VOC's masks), or scaled for viewing (0, 85, 170, 255).
  for (const std::vector<uint16_t>& values :
       {std::vector<uint16_t>{0, 1, 2, 3, 4}, std::vector<uint16_t>{0, 1, 2, 3, 255},
        std::vector<uint16_t>{0, 85, 170, 255}}) {
    Image labels = make_mask(16);
    for (size_t i = 0; i < labels.values.size(); ++i) labels.values[i] = values[i % values.size()];
    dpunet::data::write_png(f.dir / "masks/b.png", labels);
    dpunet::data::write_png(f.dir / "masks/img0.png", labels);
    CHECK(dpunet::data::import_image_folders(f.options).note.empty());
  }
}

namespace {

// A grey image whose value at (y, x) is (3y + 5x + seed) mod 251, and its mask: 255 where
// x + y is even (a pattern any misplaced tile breaks), else 0.
void write_pattern_pair(const Folders& f, const std::string& name, int64_t height, int64_t width, int seed) {
  Image image, mask;
  image.height = mask.height = height;
  image.width = mask.width = width;
  image.channels = mask.channels = 1;
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      image.values.push_back(static_cast<uint16_t>((3 * y + 5 * x + seed) % 251));
      mask.values.push_back((x + y) % 2 == 0 ? 255 : 0);
    }
  }
  dpunet::data::write_png(f.dir / ("images/" + name + ".png"), image);
  dpunet::data::write_png(f.dir / ("masks/" + name + ".png"), mask);
}

}  // namespace

TEST_CASE("import --tile cuts images of any size into tiles that cover each, and keeps a pair's tiles in one set",
          "[data]") {
  Folders f;
  // 70x45: rows at 0, 19, 38 (three 32-row tiles spread evenly), columns at 0, 13;
  // 32x32: one tile; 64x100: 2 x 4 tiles.
  write_pattern_pair(f, "a", 70, 45, 1);
  write_pattern_pair(f, "b", 32, 32, 2);
  write_pattern_pair(f, "c", 64, 100, 3);
  f.options.tile = 32;
  f.options.samples_per_shard = 5;
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.images == 3);
  CHECK(result.train_samples == 6 + 1 + 8);
  CHECK(result.train_shards.size() == 3);  // 5 + 5 + 5
  const dpunet::data::Dataset train(f.dir / "shards/train-*.h5");
  REQUIRE(train.size() == 15);
  CHECK(train.header().height == 32);
  CHECK(train.header().width == 32);
  // Sample k is a tile of a (files in name order, tiles row by row): each holds its
  // image's pixels at its origin and the mask's classes.
  const std::vector<std::array<int64_t, 3>> expected = {{1, 0, 0},  {1, 0, 13},  {1, 19, 0}, {1, 19, 13},
                                                        {1, 38, 0}, {1, 38, 13}, {2, 0, 0}};
  std::vector<uint8_t> image(32 * 32), mask(32 * 32);
  for (size_t k = 0; k < expected.size(); ++k) {
    const auto [seed, top, left] = expected[k];
    train.read(static_cast<int64_t>(k), image.data(), mask.data());
    INFO("sample " << k);
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        REQUIRE(image[y * 32 + x] == (3 * (top + y) + 5 * (left + x) + seed) % 251);
        REQUIRE(mask[y * 32 + x] == ((top + y + left + x) % 2 == 0 ? 1 : 0));
      }
    }
  }
  // The last tile of c reaches its bottom-right corner.
  train.read(14, image.data(), mask.data());
  CHECK(image[31 * 32 + 31] == (3 * 63 + 5 * 99 + 3) % 251);

  SECTION("a validation split deals pairs, not tiles") {
    f.options.out_dir = f.dir / "split";
    f.options.val_fraction = 0.34;  // one of three images
    const auto split = dpunet::data::import_image_folders(f.options);
    CHECK(split.train_samples + split.val_samples == 15);
    CHECK((split.val_samples == 6 || split.val_samples == 1 || split.val_samples == 8));
  }
  SECTION("shards share the tiles evenly") {
    f.options.out_dir = f.dir / "even";
    f.options.samples_per_shard = 4;
    const auto even = dpunet::data::import_image_folders(f.options);
    std::vector<int64_t> sizes;
    for (const std::string& shard : even.train_shards) sizes.push_back(dpunet::data::Dataset(shard).size());
    CHECK(sizes == std::vector<int64_t>{3, 4, 4, 4});
  }
  SECTION("an image smaller than the tile is named before any is read") {
    write_pattern_pair(f, "d", 20, 64, 4);
    f.options.out_dir = f.dir / "small";
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("images/d.png is 64x20, smaller than --tile 32"));
    CHECK_FALSE(std::filesystem::exists(f.dir / "small"));
    // A tile larger than every image is refused at the first, before a tile's buffers
    // (here 40 GB of them) are made.
    f.options.tile = 100000;
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("images/a.png is 45x70, smaller than --tile 100000"));
  }
  SECTION("without --tile, images of several sizes are refused, pointing at it") {
    f.options.tile = 0;
    f.options.out_dir = f.dir / "whole";
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                      HasSubstr("crop or resize them to one size") && HasSubstr("--tile"));
  }
}

TEST_CASE("import finds masks beside their images by their suffix", "[data]") {
  Folders f;
  f.options.masks_dir = f.options.images_dir;
  for (int i = 0; i < 3; ++i) {
    dpunet::data::write_png(f.dir / ("images/img" + std::to_string(i) + ".png"), make_image(16, 1, i));
    dpunet::data::write_png(f.dir / ("images/img" + std::to_string(i) + "_mask.png"), make_mask(16));
  }
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                    HasSubstr("the same folder") && HasSubstr("give --mask-suffix"));
  f.options.mask_suffix = "_mask";
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.train_samples == 3);
  CHECK(result.mask_mapping.class_of_value.size() == 2);
}

TEST_CASE("an OME-TIFF is named without its .ome, so its mask is a_mask.ome.tif", "[data]") {
  CHECK(dpunet::data::image_stem("dir/a.ome.tif") == "a");
  CHECK(dpunet::data::image_stem("dir/a.OME.TIFF") == "a");
  CHECK(dpunet::data::image_stem("dir/a.ome.png") == "a.ome");
  CHECK(dpunet::data::image_stem("dir/.ome.tif") == ".ome");
  CHECK(dpunet::data::image_stem("dir/a.b.tif") == "a.b");

  Folders f;
  f.options.masks_dir = f.options.images_dir;
  f.options.mask_suffix = "_mask";
  for (int i = 0; i < 2; ++i) {
    const std::string name = f.dir / ("images/cell" + std::to_string(i));
    write_tiff16(name + ".ome.tif", make_image(16, 1, i, 16));
    write_tiff16(name + "_mask.ome.tif", make_mask(16));
  }
  const auto result = dpunet::data::import_image_folders(f.options);
  CHECK(result.train_samples == 2);
  CHECK(result.mask_mapping.class_of_value.size() == 2);

  std::filesystem::remove(f.dir / "images/cell1_mask.ome.tif");
  f.options.overwrite = true;
  CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options),
                    HasSubstr("cell1.ome.tif: no mask named cell1_mask.png/.tif/.tiff"));
}

TEST_CASE("an import that fails halfway leaves the output folder as it was", "[data]") {
  Folders f;
  for (const char* name : {"a", "b"}) {
    dpunet::data::write_png(f.dir / (std::string("images/") + name + ".png"), make_image(8, 1, 0));
    dpunet::data::write_png(f.dir / (std::string("masks/") + name + ".png"), make_mask(8));
  }
  f.options.samples_per_shard = 1;
  f.options.mask_mapping = dpunet::data::parse_mask_mapping("0=0,255=1");
  // c sorts last, so its shard is written after a's and b's: the failure comes halfway.
  Image bad = make_mask(8);
  bad.values[0] = 7;
  const auto add_bad_pair = [&] {
    dpunet::data::write_png(f.dir / "images/c.png", make_image(8, 1, 2));
    dpunet::data::write_png(f.dir / "masks/c.png", bad);
  };
  const auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(f.options.out_dir)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  SECTION("a new folder is not left behind") {
    add_bad_pair();
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("masks/c.png"));
    CHECK_FALSE(std::filesystem::exists(f.options.out_dir));
  }
  SECTION("the dataset --overwrite would replace stays whole") {
    f.options.samples_per_shard = 2;
    const auto first = dpunet::data::import_image_folders(f.options);
    REQUIRE(first.train_shards == std::vector<std::string>{f.options.out_dir + "/train-00000.h5"});
    add_bad_pair();
    f.options.overwrite = true;
    f.options.samples_per_shard = 1;  // a's and b's shards replace the old one before c fails
    CHECK_THROWS_WITH(dpunet::data::import_image_folders(f.options), HasSubstr("mask value 7"));
    CHECK(entries() == std::vector<std::string>{"train-00000.h5"});
    CHECK(dpunet::data::Dataset(f.options.out_dir + "/train-*.h5").size() == 2);
  }
}

TEST_CASE("a writer's staging folder left by a killed run is removed by the next one", "[data]") {
  dpunet::test::TempDir dir;
  // A process number above the system's largest is one no process has.
  long pid_max = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  REQUIRE(pid_max > 0);
  const std::string abandoned = dir / (".dpunet-staging-" + dpunet::host_name() + "-" + std::to_string(pid_max + 1));
  // Another machine's, on a shared file system: its PID means nothing here.
  const std::string elsewhere = dir / (".dpunet-staging-otherhost-" + std::to_string(pid_max + 1));
  // One whose host name begins with this one's ("vm" and "vm-2").
  // (Its number, read as far as it goes, is no process's here: only the whole name tells.)
  const std::string longer =
      dir / (".dpunet-staging-" + dpunet::host_name() + "-" + std::to_string(pid_max + 1) + "-7");
  std::filesystem::create_directories(elsewhere);
  std::filesystem::create_directories(longer);
  std::filesystem::create_directories(abandoned);
  dpunet::write_file_atomically(abandoned + "/train-00000.h5", "x");
  {
    dpunet::data::StagedOutput output(dir.path(), {"train"}, false);
    CHECK_FALSE(std::filesystem::exists(abandoned));
    CHECK(std::filesystem::is_directory(elsewhere));
    CHECK(std::filesystem::is_directory(longer));
    CHECK(std::filesystem::is_directory(output.staging()));
  }
  // Nothing committed: the own staging folder went too; the other machines' stay.
  CHECK(std::filesystem::remove(elsewhere));
  CHECK(std::filesystem::remove(longer));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("import --tile keeps each tile's image statistics: per_image standardises a tile as its whole image",
          "[data]") {
  Folders f;
  // 32 rows x 64 columns: a dark left tile (glass) and a bright right one (tissue).
  Image image, mask;
  image.height = mask.height = 32;
  image.width = mask.width = 64;
  image.channels = mask.channels = 1;
  for (int64_t y = 0; y < 32; ++y) {
    for (int64_t x = 0; x < 64; ++x) {
      image.values.push_back(static_cast<uint16_t>(x < 32 ? 20 + (x + y) % 5 : 200 + (x * y) % 7));
      mask.values.push_back((x + y) % 2 == 0 ? 255 : 0);
    }
  }
  dpunet::data::write_png(f.dir / "images/a.png", image);
  dpunet::data::write_png(f.dir / "masks/a.png", mask);
  f.options.tile = 32;
  dpunet::data::import_image_folders(f.options);
  const dpunet::data::Dataset tiles(f.dir / "shards/train-*.h5");
  REQUIRE(tiles.size() == 2);
  const auto whole = dpunet::data::image_channel_statistics(f.dir / "images/a.png");
  for (const int64_t k : {0, 1}) {
    const double* source = tiles.source_statistics(k);
    REQUIRE(source != nullptr);
    CHECK(source[0] == whole[0].mean);
    CHECK(source[1] == whole[0].std);
  }
  // As prediction converts the file: (v - mean) / std in float32, not by the tile's own.
  std::vector<unsigned char> scratch;
  const dpunet::data::Sample dark =
      dpunet::data::load_sample(tiles, 0, dpunet::data::Normalizer(dpunet::data::Normalization::kPerImage), scratch);
  const auto scale = static_cast<float>(1.0 / whole[0].std);
  double sum = 0;
  for (int64_t y = 0; y < 32; ++y) {
    for (int64_t x = 0; x < 32; ++x) {
      const float stored = image.values[static_cast<size_t>(y * 64 + x)];
      REQUIRE(dark.image[static_cast<size_t>(y * 32 + x)] == (stored - static_cast<float>(whole[0].mean)) * scale);
      sum += dark.image[static_cast<size_t>(y * 32 + x)];
    }
  }
  CHECK(sum / (32 * 32) < -0.9);  // the dark half of its image; by its own statistics 0
  // Whole images store none: each is its own source.
  f.options.tile = 0;
  f.options.out_dir = f.dir / "whole";
  dpunet::data::import_image_folders(f.options);
  CHECK(dpunet::data::Dataset(f.dir / "whole/train-*.h5").source_statistics(0) == nullptr);
}
