// Which images, and which of their rows, each rank of `dpunet predict` predicts: a folder
// of slides is dealt by size so every rank stays busy to the end; fewer images than
// ranks are cut into bands of rows, so that a single slide on eight GPUs keeps all eight
// busy. Every rank computes the same plan from the same sizes.
#pragma once

#include <cstdint>
#include <vector>

namespace dpunet::infer {

struct ImageSize {
  int64_t height = 0, width = 0;  // 0 x 0: the header could not be read (opening says why)
};

// Rows [begin, end) of an image, predicted by `rank`.
struct BandOfRank {
  int rank = 0;
  int64_t begin = 0, end = 0;
};

struct ImageShare {
  int64_t index = 0;                   // the image
  int64_t row_begin = 0, row_end = 0;  // the rows this rank predicts
  int owner = 0;                       // the rank that writes the image: this one, or the one the rows go to
  std::vector<BandOfRank> others;      // for the owner: the other ranks' bands, in row order
  bool whole() const { return others.empty() && row_begin == 0; }
};

// This rank's shares, in input order. With at least as many images as ranks (or
// `split` false) each image goes whole to one rank: largest first, each to the rank with
// the fewest pixels so far (the lower rank of equals). With fewer, every image gets a
// run of consecutive ranks, the spare ranks going one by one to the image with the most
// pixels per rank, and its rows are cut into that many bands of near-equal height, none
// under `min_band_rows` (ranks no image can use predict nothing). The first rank of a run
// owns the image.
std::vector<ImageShare> share_images(const std::vector<ImageSize>& sizes, int rank, int world, bool split,
                                     int64_t min_band_rows);

}  // namespace dpunet::infer
