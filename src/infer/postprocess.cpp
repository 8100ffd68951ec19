// KeepLargest: parsing, and the region search (a breadth-first flood fill per region).
#include "infer/postprocess.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <set>

#include "common/error.h"

namespace dpunet::infer {
namespace {

// Sets to 0 every pixel that `member` selects outside the largest 8-connected region of
// such pixels. One byte per pixel besides the labels, and a breadth-first frontier (a
// region's edge, not the region): a slide's mask is post-processed at about its own size.
void keep_largest(uint8_t* labels, int64_t height, int64_t width, const std::function<bool(uint8_t)>& member) {
  const int64_t pixels = height * width;
  // 0: not reached; 1: in a region; 2: in the largest, found again from its first pixel.
  std::vector<uint8_t> mark(static_cast<size_t>(pixels), 0);
  std::deque<int64_t> frontier;
  // Marks `start`'s region `value` (over pixels marked otherwise); returns its size.
  auto fill = [&](int64_t start, uint8_t value) {
    int64_t size = 0;
    mark[start] = value;
    frontier.assign(1, start);
    while (!frontier.empty()) {
      const int64_t at = frontier.front();
      frontier.pop_front();
      ++size;
      const int64_t y = at / width, x = at % width;
      for (int64_t ny = std::max<int64_t>(0, y - 1); ny <= std::min(height - 1, y + 1); ++ny) {
        for (int64_t nx = std::max<int64_t>(0, x - 1); nx <= std::min(width - 1, x + 1); ++nx) {
          const int64_t p = ny * width + nx;
          if (mark[p] == value || !member(labels[p])) continue;
          mark[p] = value;
          frontier.push_back(p);
        }
      }
    }
    return size;
  };
  int64_t largest_start = -1, largest_size = 0;
  for (int64_t start = 0; start < pixels; ++start) {
    if (mark[start] != 0 || !member(labels[start])) continue;
    const int64_t size = fill(start, 1);
    if (size > largest_size) {
      largest_size = size;
      largest_start = start;
    }
  }
  if (largest_start >= 0) fill(largest_start, 2);
  for (int64_t p = 0; p < pixels; ++p) {
    if (mark[p] == 1) labels[p] = 0;
  }
}

}  // namespace

KeepLargest parse_keep_largest(const std::string& text, int64_t n_classes) {
  KeepLargest keep;
  keep.text = text;
  if (text.empty()) return keep;
  if (text == "foreground") {
    keep.foreground = true;
    return keep;
  }
  if (text == "all") {
    for (int64_t c = 1; c < n_classes; ++c) keep.classes.push_back(c);
    return keep;
  }
  std::set<int64_t> seen;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    size_t used = 0;
    int64_t c = -1;
    try {
      c = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DPUNET_CHECK(!item.empty() && used == item.size(), "--keep-largest: '", item,
                 "' is not a class id (give all, foreground, or class ids such as 1,3)");
    DPUNET_CHECK(c >= 1 && c < n_classes, "--keep-largest: class ", c, " is not a foreground class of this ", n_classes,
                 "-class model (1 to ", n_classes - 1, ")");
    DPUNET_CHECK(seen.insert(c).second, "--keep-largest: class ", c, " is given twice");
    keep.classes.push_back(c);
    start = end + 1;
  }
  return keep;
}

void keep_largest_regions(torch::Tensor& labels, const KeepLargest& keep) {
  DPUNET_CHECK(
      labels.dim() == 2 && labels.scalar_type() == torch::kByte && labels.device().is_cpu() && labels.is_contiguous(),
      "keep_largest_regions: labels must be a contiguous [H, W] uint8 CPU tensor, got ", labels.sizes(), " ",
      labels.scalar_type());
  uint8_t* data = labels.data_ptr<uint8_t>();
  const int64_t height = labels.size(0), width = labels.size(1);
  if (keep.foreground) keep_largest(data, height, width, [](uint8_t v) { return v != 0; });
  for (int64_t c : keep.classes) {
    const auto cls = static_cast<uint8_t>(c);
    keep_largest(data, height, width, [cls](uint8_t v) { return v == cls; });
  }
}

}  // namespace dpunet::infer
