// One job at a time on a thread of its own: the training loop hands over a checkpoint
// it has already encoded (the snapshot) and goes on computing while the file is written.
// A job's failure is never lost: poll() reports it as soon as it has happened, and
// submit() and wait() rethrow it too.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <future>

namespace dpunet::checkpoint {

class BackgroundWriter {
 public:
  BackgroundWriter() = default;
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;
  // Waits for the job in flight; a failure at that point goes to stderr (a destructor
  // cannot throw, and the run is ending on another error anyway).
  ~BackgroundWriter();

  // Waits for the previous job, starts `job`, then rethrows the previous job's failure if
  // it had one: the newer snapshot is still written while the caller handles the error.
  void submit(std::function<void()> job);
  // Returns once no job is in flight; rethrows the last job's failure.
  void wait();
  // Without blocking: rethrows the job's failure if it has finished with one.
  void poll();
  // True once no job is in flight or the one in flight has ended, waiting at most
  // `limit` for it; its failure stays for wait() to rethrow.
  bool idle_within(std::chrono::milliseconds limit) const;

 private:
  std::exception_ptr finish();  // waits for the job in flight; its failure, if any

  std::future<void> in_flight_;
};

}  // namespace dpunet::checkpoint
