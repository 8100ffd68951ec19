// One dpunet run per output folder. Two runs given the same folder (a job submitted
// twice, a second terminal) would remove each other's temporary files, set each other's
// outputs aside and interleave what they write: rank 0 of each run holds an exclusive
// lock on DIR/.lock for as long as it writes there, and the second run stops with an
// error naming the first (the lock is released when the process ends, however it ends).
// Training (run.dir), prediction (--out) and slurm/train.sbatch take the same lock.
// The guard is as good as the filesystem's flock: local filesystems and NFS (through the
// server) lock across processes and machines; mounts that lock per node (Lustre's
// localflock) guard only against a second run on the same node.
#pragma once

#include <chrono>
#include <string>

namespace dpunet {

// About an NFS lease (90 s by default) and then some.
inline constexpr std::chrono::seconds kStaleLockWait{120};

class DirectoryLock {
 public:
  // Locks `dir` (which must exist), the folder the setting `setting` (run.dir, --out)
  // names; `holder_kind` says what a holder is in the error ("training run"). Throws
  // when another process holds the lock: at once when it runs on this machine, after
  // kStaleLockWait when it ran on another (perhaps one that crashed; the other ranks
  // wait meanwhile in their first collective, so distributed.timeout_s should exceed
  // it, as the default 10 minutes does). Where the filesystem has no locks, the run
  // goes on unlocked.
  DirectoryLock(const std::string& dir, const std::string& setting, const std::string& holder_kind);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace dpunet
