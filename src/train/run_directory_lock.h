// One training run per run directory. Two runs given the same run.dir (a job submitted
// twice, a second terminal) would remove each other's temporary files, set each other's
// checkpoints aside and interleave their metrics; rank 0 of each run holds an exclusive
// lock on RUN/.lock for as long as it trains, and the second run stops with an error
// naming the first (the lock is released when the process ends, however it ends).
#pragma once

#include <string>

namespace dpunet::train {

class RunDirectoryLock {
 public:
  // Throws when another process holds the lock. Where the filesystem has no locks
  // (some network mounts), the run goes on unlocked.
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace dpunet::train
