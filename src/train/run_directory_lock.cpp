// RunDirectoryLock: flock on RUN/.lock, holding "pid on host" of the run that has it.
#include "train/run_directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/process_label.h"

namespace dpunet::train {
namespace {

std::string holder_of(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string holder = n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder.empty() ? "another process" : holder;
}

}  // namespace

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir) {
  const std::string path = run_dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  DPUNET_CHECK(fd_ >= 0, path, ": cannot open the run directory's lock: ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) return;  // no locks on this filesystem: nothing to guard with
    const std::string holder = holder_of(fd_);
    ::close(fd_);
    fd_ = -1;
    DPUNET_FAIL("run.dir ", run_dir, " is in use by another training run (", holder,
                "); wait for it to end, or give this run another run.dir");
  }
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host_name() + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace dpunet::train
