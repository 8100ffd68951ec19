#include "common/tick_labels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace dpunet {

std::vector<std::string> tick_labels(const std::vector<double>& ticks) {
  double largest = 0;
  for (const double t : ticks) largest = std::max(largest, std::abs(t));
  // Halves first: the spacing of ticks from -1e308 to 1e308 overflows, its half does not.
  const double spacing = ticks.size() < 2 ? 0 : 2 * (ticks[1] / 2 - ticks[0] / 2);
  char format[16];
  if (!(spacing > 0) || !std::isfinite(spacing)) {
    std::snprintf(format, sizeof(format), "%%.3g");
  } else {
    // Digits down to a tenth of the spacing: ticks a quarter apart read 0.25, not 0.2.
    // (The nudge keeps log10(0.1), a hair off -1, from asking for one digit more.)
    const int finest = static_cast<int>(std::floor(std::log10(spacing / 10) + 1e-9));
    if (largest < 1e7 && finest >= -8) {
      std::snprintf(format, sizeof(format), "%%.%df", std::max(0, -finest));
    } else {
      const int magnitude = static_cast<int>(std::floor(std::log10(largest)));
      std::snprintf(format, sizeof(format), "%%.%dg", std::clamp(magnitude - finest + 1, 3, 17));
    }
  }
  std::vector<std::string> labels;
  for (double t : ticks) {
    if (std::abs(t) < 1e-9 * spacing) t = 0;  // an interpolated zero is not "-0.00"
    char text[64];
    std::snprintf(text, sizeof(text), format, t);
    std::string label = text;
    // A tick that rounds to zero from below ("-0.00"): no sign either.
    if (label[0] == '-' && label.find_first_not_of("0.", 1) == std::string::npos) label.erase(0, 1);
    labels.push_back(std::move(label));
  }
  return labels;
}

}  // namespace dpunet
