// share_images.
#include "infer/image_shares.h"

#include <algorithm>
#include <utility>

namespace dpunet::infer {
namespace {

int64_t pixels_of(const ImageSize& size) {
  return size.height * size.width;
}

// Whole images dealt by size, largest first, to the rank with the fewest pixels so far.
std::vector<ImageShare> deal_whole(const std::vector<ImageSize>& sizes, int rank, int world) {
  std::vector<std::pair<int64_t, int64_t>> by_size;  // (pixels, index)
  for (size_t i = 0; i < sizes.size(); ++i) by_size.emplace_back(pixels_of(sizes[i]), static_cast<int64_t>(i));
  std::stable_sort(by_size.begin(), by_size.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  std::vector<ImageShare> mine;
  for (const auto& [count, index] : by_size) {
    const auto least = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[static_cast<size_t>(least)] += std::max<int64_t>(count, 1);
    if (least != rank) continue;
    ImageShare share;
    share.index = index;
    share.row_end = sizes[static_cast<size_t>(index)].height;
    share.owner = rank;
    mine.push_back(share);
  }
  std::sort(mine.begin(), mine.end(), [](const ImageShare& a, const ImageShare& b) { return a.index < b.index; });
  return mine;
}

}  // namespace

std::vector<ImageShare> share_images(const std::vector<ImageSize>& sizes, int rank, int world, bool split,
                                     int64_t min_band_rows) {
  const auto images = static_cast<int64_t>(sizes.size());
  if (!split || images >= world) return deal_whole(sizes, rank, world);
  // Ranks per image: one each, then every spare rank to the image with the most pixels
  // per rank that can still take a band of min_band_rows.
  std::vector<int64_t> ranks(sizes.size(), 1);
  const auto most_bands = [&](size_t i) {
    return std::max<int64_t>(1, sizes[i].height / std::max<int64_t>(1, min_band_rows));
  };
  for (int64_t spare = world - images; spare > 0; --spare) {
    size_t best = sizes.size();
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (ranks[i] >= most_bands(i)) continue;
      // pixels_i / ranks_i > pixels_best / ranks_best, without division
      if (best == sizes.size() || pixels_of(sizes[i]) * ranks[best] > pixels_of(sizes[best]) * ranks[i]) best = i;
    }
    if (best == sizes.size()) break;  // no image has rows for another band
    ++ranks[best];
  }
  std::vector<ImageShare> mine;
  int first = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t bands = ranks[i], height = sizes[i].height;
    ImageShare share;
    share.index = static_cast<int64_t>(i);
    share.owner = first;
    for (int64_t k = 0; k < bands; ++k) {
      const BandOfRank band{first + static_cast<int>(k), height * k / bands, height * (k + 1) / bands};
      if (band.rank == rank) {
        share.row_begin = band.begin;
        share.row_end = band.end;
      } else if (rank == first) {
        share.others.push_back(band);
      }
    }
    if (rank >= first && rank < first + bands) mine.push_back(share);
    first += static_cast<int>(bands);
  }
  return mine;
}

}  // namespace dpunet::infer
