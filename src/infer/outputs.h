// What `dpunet predict` writes: one HDF5 file per rank with a group per image holding
// `mask` [H, W] uint8 class ids and, when asked, `probabilities` [K, H, W] float32
// (written as the rows are predicted, so that a slide's never lie in memory whole); and
// per image a PNG of the mask (class ids as values) and an RGB overlay of the classes
// on the image.
#pragma once

#include <torch/types.h>

#include <string>

#include "data/h5_handle.h"
#include "infer/output_manifest.h"

namespace dpunet::infer {

struct OutputOptions {
  std::string directory;
  bool probabilities = false;
  bool png = true;
};

class PredictionWriter {
 public:
  // Writes DIR/predictions.h5 (world size 1) or DIR/predictions-rank<R>.h5, and lists
  // every file it creates in this rank's OutputManifest. Destroyed before finish() (an
  // error), it keeps the images written so far in the file's .partial.
  PredictionWriter(const OutputOptions& options, int rank, int world_size, int64_t n_classes);
  ~PredictionWriter();
  PredictionWriter(const PredictionWriter&) = delete;
  PredictionWriter& operator=(const PredictionWriter&) = delete;

  // Begins image `name` of height x width pixels: its class probabilities, when stored,
  // come row band by row band (write_probabilities), before write() ends the image.
  void start(const std::string& name, int64_t height, int64_t width);
  // Rows row .. row + R - 1 of the image's probabilities [K, R, W] (float, any device).
  void write_probabilities(int64_t row, const torch::Tensor& rows);
  // Ends the image: labels [H, W] uint8 class ids on the CPU (the mask); raw [C, H, W]
  // uint8 for the overlay. The image is in the file, whole, once this returns.
  void write(const std::string& name, const torch::Tensor& labels, const torch::Tensor& raw);
  // Closes the HDF5 file and moves it into place.
  void finish();
  const std::string& path() const { return path_; }
  // For the other files of this prediction (eval.json).
  OutputManifest& manifest() { return manifest_; }

 private:
  OutputOptions options_;
  int64_t n_classes_;
  OutputManifest manifest_;
  std::string path_, temporary_;
  data::H5Handle file_;
  int64_t written_ = 0;  // images in file_
  // The image begun: its name and size, and its probabilities while they are written (a
  // dataset of no name, linked into the image's group by write(): an image stopped half way
  // leaves nothing a reader would take for a prediction).
  std::string current_;
  int64_t height_ = 0, width_ = 0, probability_rows_ = 0;
  data::H5Handle probabilities_;
};

}  // namespace dpunet::infer
