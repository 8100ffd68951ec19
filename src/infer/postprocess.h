// nnU-Net's post-processing of a predicted mask: of a class (or of all foreground taken
// together), only the largest connected region stays, and its other regions become
// background. Organs and other single structures gain from it (stray false positives go);
// cells and other many-object targets lose whole objects, so it is chosen per class.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace dpunet::infer {

struct KeepLargest {
  bool foreground = false;       // all foreground classes as one region set, first
  std::vector<int64_t> classes;  // then each of these classes on its own
  bool any() const { return foreground || !classes.empty(); }
  // As given: "foreground", "all" or "1,3"; empty when nothing is kept.
  std::string text;
};

// "all" (every foreground class on its own), "foreground" (the foreground as a whole),
// or class ids "1,3" (each between 1 and n_classes - 1). Errors name --keep-largest.
KeepLargest parse_keep_largest(const std::string& text, int64_t n_classes);

// labels [H, W] uint8 class ids on the CPU, changed in place. Regions are 8-connected
// (pixels touching at a corner belong together); of equal largest regions, the first
// in row order stays.
void keep_largest_regions(torch::Tensor& labels, const KeepLargest& keep);

}  // namespace dpunet::infer
