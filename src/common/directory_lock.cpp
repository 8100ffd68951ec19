// DirectoryLock: flock on DIR/.lock, holding "pid on host" of the run that has it.
#include "common/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/process_label.h"
#include "common/text.h"

namespace dpunet {
namespace {

std::string holder_of(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string holder = n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder;
}

}  // namespace

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& setting, const std::string& holder_kind) {
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  DPUNET_CHECK(fd_ >= 0, path, ": cannot open the folder's lock: ", std::strerror(errno));
  const auto deadline = std::chrono::steady_clock::now() + kStaleLockWait;
  bool said = false;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return;  // no locks on this filesystem: nothing to guard with
    const std::string written = holder_of(fd_);
    const std::string holder = written.empty() ? "another process" : written;
    // A holder on this machine is alive (the kernel releases a dead process's lock). One
    // on another machine may be a crashed node whose lock the file server keeps until
    // its lease ends: a requeued job waits that out rather than fail. A holder that has
    // not written its name yet started just now, so it is alive, wherever it is.
    const std::string here = " on " + host_name();
    const bool elsewhere = !written.empty() && !ends_with(written, here);
    if (!elsewhere || std::chrono::steady_clock::now() >= deadline) {
      ::close(fd_);
      fd_ = -1;
      DPUNET_FAIL(setting, " ", dir, " is in use by another ", holder_kind, " (", holder,
                  "); wait for it to end, or give this run another ", setting);
    }
    if (!said) {
      std::fprintf(stderr, "dpunet: %s %s is locked by %s; waiting up to %lld s for it\n", setting.c_str(), dir.c_str(),
                   holder.c_str(), static_cast<long long>(kStaleLockWait.count()));
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host_name() + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace dpunet
