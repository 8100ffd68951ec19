// learning_rate.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace dpunet::train {

double learning_rate(const config::ScheduleConfig& s, double lr_max, int64_t step, int64_t total_steps) {
  if (step < s.warmup_steps) return lr_max * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const double span = std::max<int64_t>(1, total_steps - s.warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - s.warmup_steps) / span, 0.0, 1.0);
  if (s.name == "cosine") return s.lr_min + (lr_max - s.lr_min) * 0.5 * (1 + std::cos(M_PI * progress));
  if (s.name == "poly") return s.lr_min + (lr_max - s.lr_min) * std::pow(1 - progress, s.poly_exponent);
  return lr_max;
}

}  // namespace dpunet::train
