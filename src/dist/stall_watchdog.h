// A thread that watches collectives completing asynchronously (NCCL's, on a GPU stream)
// so that the host never has to block on them to notice a failure. Each watched
// collective is polled until it reports done. The first one that reports an error, or is
// still pending after the timeout, is a failure: the transport is aborted (on a thread of
// its own, since an abort can itself hang), and the message is kept for the caller's
// thread, which raises it at its next call into the communicator. If that thread has not
// raised it within the grace period (it may be blocked on the stalled work forever), or
// the abort has not returned by then, the watchdog hands the message to the last resort,
// which ends the process.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/awake_time.h"

namespace dpunet::dist {

class StallWatchdog {
 public:
  enum class State { kPending, kDone, kFailed };
  // Reports the collective's state; on kFailed, writes why into *error.
  using Poll = std::function<State(std::string* error)>;

  struct Options {
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
    std::chrono::milliseconds poll_interval{10};
    // How long the caller's thread has to raise a failure, and the abort to return,
    // before the last resort.
    std::chrono::milliseconds grace{std::chrono::seconds(30)};
    // Stops the transport (ncclCommAbort); called once, on a detached thread of its own,
    // so it must not refer to anything that can die before it returns.
    std::function<void()> abort_transport;
    // Ends the process with the message; called at most once, from the watchdog's thread.
    std::function<void(const std::string& message)> last_resort;
    // Prefix of every failure message: who and where ("rank 1 on node3").
    std::string label;
    // Said in a stall's message: what sets the timeout (CommunicatorOptions::timeout_hint).
    std::string timeout_hint;
    // The end of every failure message: what happens next.
    std::string consequence = "the communicator was aborted";
  };

  explicit StallWatchdog(Options options);
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  // Starts watching `name` (e.g. "all_reduce (Float, 1000 elements)") from now, for the
  // options' timeout or, when given, `timeout` (start-up, which waits for the slowest rank
  // to arrive, may take longer than any collective).
  void watch(std::string name, Poll poll, std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // Throws dpunet::Error with the failure message if a failure has been seen.
  void raise_if_failed();
  std::optional<std::string> failure() const;
  // Collectives still being watched.
  size_t pending() const;
  // Blocks until no collective is pending or a failure has been seen (a stall is seen
  // at the timeout at the latest).
  void wait_until_idle() const;

 private:
  struct Entry {
    std::string name;
    Poll poll;
    AwakeTime::Duration start;  // awake_'s time when watched
    std::chrono::milliseconds timeout;
  };
  void run();
  // Polls every entry once, dropping those done; returns the failure message if one
  // failed or stalled.
  std::optional<std::string> poll_entries(std::deque<Entry>& entries, AwakeTime::Duration now) const;
  void fail(const std::string& message);

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  mutable std::condition_variable idle_;  // notified when the last entry goes or a failure comes
  std::deque<Entry> entries_;
  size_t in_poll_ = 0;  // entries taken out for the poll in progress
  std::optional<std::string> failure_;
  bool raised_ = false;
  bool stopping_ = false;
  bool escalated_ = false;
  // Set by the abort's thread, which may outlive this object.
  std::shared_ptr<std::atomic<bool>> abort_returned_ = std::make_shared<std::atomic<bool>>(false);
  // Timeouts and the grace count only time the process ran: a job suspended for longer
  // than the timeout is not taken for a stalled one when it resumes. Read by run().
  AwakeTime awake_;
  AwakeTime::Duration failed_at_{0};
  std::thread thread_;
};

}  // namespace dpunet::dist
