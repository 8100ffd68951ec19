// What `dpunet predict` writes: one HDF5 file per rank with a group per image holding
// `mask` [H, W] uint8 class ids and, when asked, `probabilities` [K, H, W] float32; and
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

  // labels [H, W] uint8 class ids on the CPU (the mask); probabilities [K, H, W] float,
  // stored with OutputOptions::probabilities; raw [C, H, W] uint8 for the overlay.
  void write(const std::string& name, const torch::Tensor& labels, const torch::Tensor& probabilities,
             const torch::Tensor& raw);
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
};

}  // namespace dpunet::infer
