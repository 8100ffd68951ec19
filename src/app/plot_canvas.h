// A small RGB raster for `dpunet plot`: lines, rectangles and text in a built-in 5x7
// pixel font, saved as PNG. Enough for training curves without a plotting library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::app {

struct Colour {
  uint8_t r, g, b;
};

class Canvas {
 public:
  Canvas(int width, int height, Colour background);

  int width() const { return width_; }
  int height() const { return height_; }
  void pixel(int x, int y, Colour c);
  void line(double x0, double y0, double x1, double y1, Colour c, int thickness = 1);
  void rect(int x0, int y0, int x1, int y1, Colour c);  // outline
  // Text with its top-left corner at (x, y), `scale` pixels per font pixel. Characters
  // outside the font are drawn as blanks.
  void text(int x, int y, const std::string& s, Colour c, int scale = 2);
  static int text_width(const std::string& s, int scale = 2) { return static_cast<int>(s.size()) * 6 * scale; }
  void save_png(const std::string& path) const;

 private:
  int width_, height_;
  std::vector<uint16_t> rgb_;  // [H, W, 3]
};

}  // namespace dpunet::app
