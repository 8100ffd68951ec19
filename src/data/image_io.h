// PNG and TIFF files in and out, 8 or 16 bits per value, grey or RGB(A). Errors name
// the file; the libraries' own messages are captured, not printed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dpunet::data {

// What a label mask's stored values are, read as stored: the same value means the same
// label only between masks stored alike.
enum class StoredValues { kValues, kPaletteIndices, kWhiteIsZero };

struct Image {
  int64_t height = 0, width = 0, channels = 0;  // channels: 1 grey, 3 RGB (alpha dropped)
  int bits = 8;                                 // 8 or 16; a grey mask's 1, 2 or 4 as stored
  StoredValues stored = StoredValues::kValues;  // a label mask's, as its file stores them
  std::vector<uint16_t> values;                 // [H, W, C], interleaved as in the file
};

// What a file holds: an image, or a label mask whose stored values are its labels.
enum class ImageRole { kImage, kLabels };

bool is_image_file(const std::string& path);  // .png, .tif, .tiff (any case)
// The name an image file is known by: its file name less the extension, and less ".ome"
// for an OME-TIFF (a.ome.tif is a). Masks are found, and outputs named, by it.
std::string image_stem(const std::string& path);
// Label masks keep their stored values (palette indices, a TIFF's white-is-zero values as
// written, a 1-, 2- or 4-bit grey PNG's values unscaled); images are read as displayed
// (palettes as their colours, low-bit grey scaled to 8 bits).
Image read_image(const std::string& path, ImageRole role = ImageRole::kImage);
// What read_image would give but the pixels (Image::values stays empty): the size,
// channels and bit depth, from the file's header, with read_image's refusals of what it
// cannot read. A slide's is known without decoding it.
Image read_image_header(const std::string& path, ImageRole role = ImageRole::kImage);

class RowSource;  // one file format's reading (row_source.h)

// The bytes an interlaced PNG of `height` rows of `row_bytes` takes decoded whole: an
// error naming `path` where that does not fit in size_t (a header of 2^31 - 1 pixels a
// side would wrap it round to a small buffer that libpng then writes past).
size_t interlaced_png_bytes(const std::string& path, size_t row_bytes, size_t height);

// One image file's rows, top to bottom, as read_image converts them: memory for the rows
// asked for, not for the image, so a slide is cut into tiles or predicted a band at a time.
// An interlaced PNG is the exception: its last pass finishes the first row, so it is
// decoded whole at the first read. Errors name the file (and the row where they can).
class ImageRows {
 public:
  explicit ImageRows(const std::string& path, ImageRole role = ImageRole::kImage);
  ~ImageRows();
  ImageRows(const ImageRows&) = delete;
  ImageRows& operator=(const ImageRows&) = delete;

  // The image as read_image_header gives it (values empty).
  const Image& header() const { return header_; }
  const std::string& path() const { return path_; }
  // Rows read so far: the next read starts there.
  int64_t rows_read() const { return rows_read_; }
  // The next `count` rows into `out`, [count, width, channels]; they must exist.
  void read(int64_t count, uint16_t* out);
  // The rest of the file, `band_rows` rows at a time, each band handed to `visit` as an
  // Image of its rows (the last may be shorter) with the file row it starts at. One
  // band's values are held, whatever the file's height.
  void for_each_band(int64_t band_rows, const std::function<void(const Image& band, int64_t top)>& visit);

 private:
  std::string path_;
  Image header_;
  std::unique_ptr<RowSource> source_;
  int64_t rows_read_ = 0;
};

// Writes an 8-bit PNG (1 or 3 channels; values must be < 256).
void write_png(const std::string& path, const Image& image);
// Writes an 8-bit PNG from bytes [H, W, C] (C 1 or 3), without an Image's 16-bit copy.
void write_png8(const std::string& path, int64_t height, int64_t width, int64_t channels, const uint8_t* values);
// Writes an 8-bit PNG a row at a time: `fill` makes row y's [W, C] bytes (C 1 or 3) in
// `row`, so that an image made from others (an overlay) is never held whole. It must not
// throw.
void write_png8_rows(const std::string& path, int64_t height, int64_t width, int64_t channels,
                     const std::function<void(int64_t y, uint8_t* row)>& fill);

}  // namespace dpunet::data
