// A clock for timeouts that does not count time the process spent stopped.
#pragma once

#include <algorithm>
#include <chrono>

namespace dpunet {

// The time this process was running, as seen by a loop that reads it often: each stretch
// between two reads counts at most `max_step`. A process stopped for a while (SIGSTOP,
// `scontrol suspend`, gang scheduling) then sees at most one step pass, where a
// steady_clock deadline would expire the moment it runs again.
class AwakeTime {
 public:
  using Duration = std::chrono::steady_clock::duration;

  explicit AwakeTime(Duration max_step = std::chrono::seconds(1))
      : last_(std::chrono::steady_clock::now()), max_step_(max_step) {}

  // Advances by the time since the last read (at most max_step) and returns the total.
  Duration now() {
    const auto time = std::chrono::steady_clock::now();
    total_ += std::min<Duration>(time - last_, max_step_);
    last_ = time;
    return total_;
  }

  // The total as of the last read.
  Duration last() const { return total_; }

 private:
  std::chrono::steady_clock::time_point last_;
  Duration total_{0};
  Duration max_step_;
};

}  // namespace dpunet
