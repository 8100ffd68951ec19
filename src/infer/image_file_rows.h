// An image file's rows as network inputs: decoded, converted to float and normalised a
// band at a time, so that predicting a slide holds a band of it, not the image as floats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image_io.h"
#include "data/normalize.h"
#include "infer/input_rows.h"

namespace dpunet::infer {

// How one channel's stored value v becomes an input: (v - centre) * scale + shift, in
// float32 as training converts shards (an affine's centre is 0; a standardisation's
// shift is).
struct ChannelConversion {
  float centre = 0, scale = 1, shift = 0;
};
std::vector<ChannelConversion> conversions(const std::vector<data::ChannelAffine>& affine);

class ImageFileRows : public InputRows {
 public:
  // `conversion`: one per channel. `keep_display`: keep the first channel's stored values
  // for display().
  ImageFileRows(const std::string& path, std::vector<ChannelConversion> conversion, bool keep_display);

  int64_t channels() const override { return file_.header().channels; }
  int64_t height() const override { return file_.header().height; }
  int64_t width() const override { return file_.header().width; }
  torch::Tensor read(int64_t count) override;
  // The first channel stretched from its lowest to its highest value over 0..255.
  torch::Tensor display() override;

 private:
  // The stored values kept for display(): 1 byte a pixel for an 8-bit file, else 2.
  template <typename T>
  torch::Tensor stretch(std::vector<T>& values) const;

  data::ImageRows file_;
  std::vector<ChannelConversion> conversion_;
  bool keep_display_ = false;
  std::vector<uint16_t> band_;  // one read's stored values
  // The first channel's stored values so far, for display(): one of them, by bit depth.
  std::vector<uint8_t> first_channel8_;
  std::vector<uint16_t> first_channel16_;
};

// What standardises each channel of an image file by its own mean and (population)
// standard deviation, as training's per-image normalisation does; from one pass over the
// file, a band at a time.
std::vector<ChannelConversion> standardisation(const std::string& path);

}  // namespace dpunet::infer
