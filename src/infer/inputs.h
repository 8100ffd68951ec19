// What `dpunet predict` reads: HDF5 shards (with their masks) or PNG/TIFF images (with
// optional masks from a folder, matched by file name), one item at a time; an image
// file's pixels are read a band of rows at a time as its prediction needs them.
#pragma once

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_io.h"
#include "data/mask_mapping.h"
#include "data/normalize.h"
#include "infer/image_shares.h"
#include "infer/input_rows.h"

namespace dpunet::infer {

struct InputItem {
  std::string name;                  // for output files: the image's stem, or "sample-000012"
  std::string source;                // for messages: the image file, or "SHARD sample I"
  std::unique_ptr<InputRows> image;  // [C, H, W] float, normalised; its display() (InputOptions::display)
                                     // is the first channel scaled to 8 bits, for overlays
  torch::Tensor mask;                // [H, W] uint8 class ids; undefined when none is known
};

struct InputOptions {
  // The model's normalisation; without statistics, `dataset` normalisation uses the
  // shards' own, and image files (which carry none) are standardised one by one.
  data::Normalizer normalizer;
  std::string masks_dir;       // image inputs: their masks, found by name (and left out of the inputs)
  bool read_masks = true;      // false: InputItem::mask stays undefined (masks_dir still tells masks apart)
  bool display = true;         // false: InputItem::image keeps no display copy
  bool require_masks = false;  // image inputs: every one must have its mask (--eval)
  // Image inputs: leave out the files named as masks (<name><mask_suffix>) in every
  // folder, not only in masks_dir (prediction without --eval, masks beside the images).
  bool masks_among_images = false;
  std::string mask_suffix;         // the mask of a.png is a<suffix>.png|.tif|.tiff
  data::MaskMapping mask_mapping;  // empty: mask values are classes
  int64_t n_classes = 0;           // masks must hold classes below this (0: unchecked)
};

class InputSet {
 public:
  // `input`: a shard dataset spec (directory of .h5, glob, .txt index, .h5), an image
  // file, a folder of images (a folder holding .h5 files is shards) or a glob that
  // matches only images.
  InputSet(const std::string& input, InputOptions options);

  int64_t size() const;
  // Item `index`, its pixels not yet read (a shard's sample is, whole: they are small).
  // `pixels_only`: without the display copy and the mask (an image file of which this
  // rank predicts a band for another to write, or an ensemble's second reading).
  InputItem open(int64_t index, bool pixels_only = false) const;
  // InputItem::name of item `index`, without loading it.
  std::string name(int64_t index) const;
  // Every item's name, in order.
  std::vector<std::string> names() const;
  // Item `index`'s height and width, from its header alone; 0 x 0 when the header cannot
  // be read (open() then says why).
  ImageSize image_size(int64_t index) const;

  // The per-channel value * scale + shift that turns item `index`'s stored pixel values
  // into this set's inputs, when it does not depend on the image (statistics, or scaling
  // by the bit depth); none for per-image standardisation. An ensemble's models that
  // normalise otherwise share one image through it: one set's inputs become another's
  // tile by tile.
  std::optional<std::vector<data::ChannelAffine>> fixed_affine(int64_t index) const;
  int64_t channels() const;
  // The shards read; null for image files.
  const data::Dataset* dataset() const { return dataset_.get(); }
  // The mask value of unlabelled pixels in InputItem::mask (-1: none): the shards', or
  // data::kDefaultIgnoreLabel where --mask-map maps a value to ignore.
  int ignore_label() const;

 private:
  // Says once that the model's statistics are in other units than the inputs'.
  void warn_other_units(const std::string& pixel_type, const std::string& instead) const;
  // Removes the masks that lie among the image files (the folder of --masks).
  void drop_masks_among_images();
  // --eval's masks folder is given and exists.
  void check_masks_folder() const;
  // An image's header against the first image's: its channels, and its bit depth where
  // the model's statistics read pixels in their stored units.
  void check_like_first(const std::string& path, const data::Image& header) const;
  // The image file `path` has its mask in options_.masks_dir, laid out as `image` (its
  // header; nullptr when it cannot be read, which is said when the image is opened).
  void check_mask_of(const std::string& path, const data::Image* image) const;
  // A mask's size against its image's, its channels, and the mapping's kind.
  void check_mask_layout(const std::string& mask_path, const data::Image& mask, const std::string& image_path,
                         const data::Image& image) const;
  // The mask of image file `path` as class ids, or an undefined tensor when it has none.
  torch::Tensor load_mask(const std::string& path, const data::Image& image) const;

  std::string input_;
  InputOptions options_;
  std::shared_ptr<const data::Dataset> dataset_;
  std::vector<std::string> images_;
  int64_t image_channels_ = 0;  // of the first image file; every other must match
  int image_bits_ = 0;          // likewise: 8- and 16-bit files would be normalised differently
  mutable bool warned_ = false;
};

}  // namespace dpunet::infer
