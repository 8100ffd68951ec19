// StallWatchdog: one polling thread per communicator; see the header for the contract.
#include "dist/stall_watchdog.h"

#include <algorithm>
#include <exception>
#include <system_error>

#include "common/error.h"
#include "common/text.h"

namespace dpunet::dist {

StallWatchdog::StallWatchdog(Options options)
    : options_(std::move(options)),
      awake_(std::max<AwakeTime::Duration>(std::chrono::seconds(1), 2 * options_.poll_interval)) {
  thread_ = std::thread([this] { run(); });
}

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  idle_.notify_all();
  thread_.join();
}

void StallWatchdog::watch(std::string name, Poll poll, std::optional<std::chrono::milliseconds> timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_) return;  // the transport is gone; the caller raises the failure next
  entries_.push_back({std::move(name), std::move(poll), awake_.last(), timeout.value_or(options_.timeout)});
}

void StallWatchdog::raise_if_failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_) return;
  raised_ = true;
  throw Error(*failure_);
}

std::optional<std::string> StallWatchdog::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

size_t StallWatchdog::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size() + in_poll_;
}

void StallWatchdog::wait_until_idle() const {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] { return (entries_.empty() && in_poll_ == 0) || failure_.has_value() || stopping_; });
}

std::optional<std::string> StallWatchdog::poll_entries(std::deque<Entry>& entries, AwakeTime::Duration now) const {
  for (auto it = entries.begin(); it != entries.end();) {
    std::string error;
    State state = State::kFailed;
    try {
      state = it->poll(&error);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (state == State::kDone) {
      it = entries.erase(it);
      continue;
    }
    if (state == State::kFailed) {
      return detail::concat(it->name, " failed on ", options_.label, ": ", error, "; ", options_.consequence);
    }
    if (now - it->start > it->timeout) {
      return detail::concat(it->name, " has not completed after ", it->timeout.count() / 1000.0, " s on ",
                            options_.label, ": another rank stopped or is issuing different collectives",
                            parenthesised(options_.timeout_hint), "; ", options_.consequence);
    }
    ++it;
  }
  return std::nullopt;
}

void StallWatchdog::fail(const std::string& message) {
  failure_ = message;
  failed_at_ = awake_.last();
  entries_.clear();
  if (!options_.abort_transport) {
    *abort_returned_ = true;
    return;
  }
  // Detached: an abort that hangs must not keep this thread from the last resort.
  try {
    std::thread([abort = options_.abort_transport, returned = abort_returned_] {
      abort();
      *returned = true;
    }).detach();
  } catch (const std::system_error&) {
    // No thread to abort on: the last resort ends the process after the grace period.
  }
}

void StallWatchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, options_.poll_interval, [&] { return stopping_; });
    if (stopping_) return;
    const AwakeTime::Duration now = awake_.now();
    if (!failure_) {
      // Polled without the lock: a poll is several CUDA calls, and watch() is called from
      // backward's hooks, which should not wait for them.
      std::deque<Entry> polling;
      polling.swap(entries_);
      in_poll_ = polling.size();
      lock.unlock();
      const std::optional<std::string> message = poll_entries(polling, now);
      lock.lock();
      in_poll_ = 0;
      for (auto& entry : entries_) polling.push_back(std::move(entry));  // watched meanwhile: after
      entries_ = std::move(polling);
      if (message) fail(*message);
      if (entries_.empty() || failure_) idle_.notify_all();
      continue;
    }
    if (escalated_ || now - failed_at_ < options_.grace) continue;
    // Raised, and the transport is down: the caller's error handling ends the job.
    if (raised_ && abort_returned_->load()) continue;
    // The caller's thread never came back to raise it (it is blocked for good), or the
    // abort hangs, which would hang the process's exit too.
    escalated_ = true;
    const std::string message = *failure_;
    lock.unlock();
    if (options_.last_resort) options_.last_resort(message);
    lock.lock();
  }
}

}  // namespace dpunet::dist
