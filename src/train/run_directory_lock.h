// One training run per run directory. Two runs given the same run.dir (a job submitted
// twice, a second terminal) would remove each other's temporary files, set each other's
// checkpoints aside and interleave their metrics; rank 0 of each run holds an exclusive
// lock on RUN/.lock for as long as it trains, and the second run stops with an error
// naming the first (the lock is released when the process ends, however it ends).
// The guard is as good as the filesystem's flock: local filesystems and NFS (through the
// server) lock across processes and machines; mounts that lock per node (Lustre's
// localflock) guard only against a second run on the same node.
#pragma once

#include <chrono>
#include <string>

namespace dpunet::train {

// About an NFS lease (90 s by default) and then some.
inline constexpr std::chrono::seconds kStaleLockWait{120};

class RunDirectoryLock {
 public:
  // Throws when another process holds the lock: at once when it runs on this machine,
  // after kStaleLockWait when it ran on another (perhaps one that crashed; the other
  // ranks wait meanwhile in their first collective, so distributed.timeout_s should
  // exceed it, as the default 10 minutes does). Where the filesystem has no locks, the
  // run goes on unlocked.
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace dpunet::train
