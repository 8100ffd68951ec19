// tile_origins.
#include "common/tile_grid.h"

#include <algorithm>
#include <cmath>

namespace dpunet {

std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap) {
  if (size <= tile) return {0};
  const double step = std::max(1.0, static_cast<double>(tile) * (1.0 - overlap));
  // Less a hair: 1 - 0.9 is a little under 0.1, and a span of exactly ten steps would
  // otherwise take eleven and a tile more.
  const auto count = static_cast<int64_t>(std::ceil(static_cast<double>(size - tile) / step - 1e-9)) + 1;
  std::vector<int64_t> origins;
  for (int64_t i = 0; i < count; ++i) {
    origins.push_back(static_cast<int64_t>(std::llround(static_cast<double>(i) * (size - tile) / (count - 1))));
  }
  return origins;
}

}  // namespace dpunet
