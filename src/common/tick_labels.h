// Axis labels for evenly spaced ticks, with as many digits as their spacing needs: a
// throughput of 2390 to 2394 reads 2390.0, 2391.0, ... and not 2.39e+03 five times.
#pragma once

#include <string>
#include <vector>

namespace dpunet {

// `ticks`: ascending and evenly spaced (at least two). Neighbouring labels differ
// whenever the ticks do; plain decimals below 1e7, exponents above or far below.
std::vector<std::string> tick_labels(const std::vector<double>& ticks);

}  // namespace dpunet
