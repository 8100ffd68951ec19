// `dpunet data import`: shards from folders of images and masks. Masks are matched by
// file name, their values or colours mapped to class ids, and a seeded share of the
// pairs can go to a validation set.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/mask_mapping.h"

namespace dpunet::data {

// One digit per fold keeps "fold[!k]-*.h5" an exact glob for the other folds.
inline constexpr int kMaxFolds = 10;

struct ImportOptions {
  std::string images_dir, masks_dir, out_dir;
  std::string prefix = "train";    // training shards: <prefix>-00000.h5, ...
  std::string val_prefix = "val";  // validation shards
  std::string mask_suffix;         // mask of "a.png" is "a<suffix>.png|.tif|.tiff"
  double val_fraction = 0.0;
  // Cross-validation: 2 to kMaxFolds seeded, equal sets of pairs, fold0-*.h5, fold1-*.h5,
  // ... (instead of train/val); fold k trains on the others ("fold[!k]-*.h5") and
  // validates on itself. 0: train/val by val_fraction.
  int folds = 0;
  int64_t samples_per_shard = 256;
  // 0: each image is one sample (all of one size). T > 0: each image and its mask are cut
  // into T x T samples that cover it from edge to edge (spread evenly, overlapping where
  // T does not divide it), so images of any size at least T import, and a slide becomes
  // samples that training reads one at a time. A pair's tiles all go to one set.
  int64_t tile = 0;
  int gzip_level = 0;
  uint64_t seed = 0;
  // Mask values to classes; kIgnoreClass pixels are stored as the shards' ignore label.
  // Empty: the sorted distinct values found in the masks become classes 0, 1, 2, ...
  MaskMapping mask_mapping;
  std::vector<std::string> class_names;  // optional, one per class
  // Shards already in out_dir under the prefixes: refused, or with this replaced once
  // every new shard was written (data/output_folder.h).
  bool overwrite = false;
};

// The mask of an image in `masks_dir`: "<stem><suffix>" with a .png/.tif/.tiff extension
// in any case; empty when there is none.
std::string find_mask(const std::string& masks_dir, const std::string& image_path, const std::string& suffix);
// When `masks_dir` holds STEM<something>.png for an image STEM, the masks are probably
// named with a suffix: " (there is STEM_mask.png: --mask-suffix _mask?)", else "".
std::string mask_suffix_hint(const std::string& masks_dir, const std::string& stem);

struct ImportResult {
  std::vector<std::string> train_shards, val_shards;
  int64_t train_samples = 0, val_samples = 0;
  std::vector<std::vector<std::string>> fold_shards;  // with folds, per fold
  std::vector<int64_t> fold_samples;
  MaskMapping mask_mapping;  // as applied (its kind is the masks')
  int64_t images = 0;        // pairs read (samples count tiles)
  std::string note;          // what the import doubts (found classes that look like a resize's edges), or empty
};

ImportResult import_image_folders(const ImportOptions& options);
// "fold3": the shard prefix of fold 3.
std::string fold_prefix(int fold);

}  // namespace dpunet::data
