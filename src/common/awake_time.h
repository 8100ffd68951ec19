// A clock for timeouts that does not count time the process spent stopped.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

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

// condition_variable::wait_for with a timeout in AwakeTime: waits in short slices, so a
// stop in between counts as one slice. Returns the predicate's last value.
template <typename Predicate>
bool wait_for_awake(std::condition_variable& condition, std::unique_lock<std::mutex>& lock, AwakeTime::Duration timeout,
                    Predicate ready) {
  constexpr auto kSlice = std::chrono::milliseconds(250);
  AwakeTime waited(2 * kSlice);
  while (!ready()) {
    const AwakeTime::Duration left = timeout - waited.now();
    if (left <= AwakeTime::Duration::zero()) return false;
    condition.wait_for(lock, std::min<AwakeTime::Duration>(left, kSlice));
  }
  return true;
}

}  // namespace dpunet
