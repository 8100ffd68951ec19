// Learning-rate schedules: linear warmup, then cosine decay, polynomial decay or
// constant. A pure function of the step, so resuming needs only the step.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace dpunet::train {

// The learning rate for optimizer step `step` (0-based) of `total_steps`.
double learning_rate(const config::ScheduleConfig& schedule, double lr_max, int64_t step, int64_t total_steps);

}  // namespace dpunet::train
