// Where square tiles go along one axis of an image: evenly spread from one edge to the
// other, never past them. Overlap-tile prediction and import's cutting of large images
// into samples place their tiles alike.
#pragma once

#include <cstdint>
#include <vector>

namespace dpunet {

// `count` origins from 0 to size - tile, evenly spread so that neighbours overlap by at
// least `overlap` (a share of a tile, in [0, 1)); {0} when the tile covers the axis.
std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap);

}  // namespace dpunet
