// One job at a time on a thread of its own: the training loop hands over a checkpoint
// it has already encoded (the snapshot) and goes on computing while the file is written.
// A job's failure is never lost: the next submit() or wait() rethrows it.
#pragma once

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

  // Waits for the previous job (rethrowing its failure), then starts `job`.
  void submit(std::function<void()> job);
  // Returns once no job is in flight; rethrows the last job's failure.
  void wait();

 private:
  std::future<void> in_flight_;
};

}  // namespace dpunet::checkpoint
