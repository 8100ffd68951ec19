// write_file_atomically: open, write, fsync, rename, fsync(dir); read_file.
#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace dpunet {
namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

constexpr std::string_view kTemporaryInfix = ".tmp.";

std::optional<std::string> atomic_write_target(const std::string& name) {
  const size_t infix = name.rfind(kTemporaryInfix);
  if (infix == std::string::npos || infix == 0) return std::nullopt;
  const std::string pid = name.substr(infix + kTemporaryInfix.size());
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return name.substr(0, infix);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  write_file_atomically(path, std::vector<std::string_view>{bytes});
}

std::string temporary_path_for(const std::string& path) {
  return path + std::string(kTemporaryInfix) + std::to_string(getpid());
}

std::string replaced_file(const std::string& path) {
  namespace fs = std::filesystem;
  // Link by link, as open() follows them (to its limit of 40): a link to a file not there
  // yet names where the file is to be made.
  std::string target = path;
  std::error_code ec;
  for (int hops = 0; hops < 40; ++hops) {
    if (!fs::is_symlink(target, ec)) return target;
    const fs::path next = fs::read_symlink(target, ec);
    if (ec) return path;
    target = next.is_absolute() ? next.string() : (fs::path(target).parent_path() / next).string();
  }
  return path;  // a loop of links: replaced as a name, as nothing can be written through it
}

int keep_permissions(const std::string& replaced, int fd) {
  // A file of ours kept private (0600) stays so. Another user's file is replaced by one
  // of ours: their mode on it could lock them out of it.
  struct stat old {};
  if (::stat(replaced.c_str(), &old) != 0 || old.st_uid != ::geteuid()) return 0;
  return ::fchmod(fd, old.st_mode & 0777) == 0 ? 0 : errno;
}

void write_file_atomically(const std::string& path, const std::vector<std::string_view>& pieces) {
  const std::string target = replaced_file(path);
  const std::string temporary = temporary_path_for(target);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DPUNET_CHECK(fd >= 0, "cannot write ", path, ": ", std::strerror(errno));
  int error = keep_permissions(target, fd);
  for (const std::string_view piece : pieces) {
    size_t written = 0;
    while (error == 0 && written < piece.size()) {
      const ssize_t n = ::write(fd, piece.data() + written, piece.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : EIO;  // a write of 0 bytes sets no errno
        break;
      }
      written += static_cast<size_t>(n);
    }
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && std::rename(temporary.c_str(), target.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temporary.c_str());
    DPUNET_FAIL("cannot write ", path, ": ", std::strerror(error), " (the previous file, if any, is unchanged)");
  }
  // The rename is durable only once the directory itself is synced.
  sync_directory(directory_of(target));
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DPUNET_CHECK(fd >= 0, "cannot open ", path, " to flush it to disk: ", std::strerror(errno));
  const int error = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  DPUNET_CHECK(error == 0, "cannot flush ", path, " to disk: ", std::strerror(error));
}

void sync_directory(const std::string& directory) {
  // Best effort: some network file systems refuse to sync a directory, and the files'
  // own data was synced already.
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  // A folder opens as a stream and reads as nothing: say what it is instead.
  DPUNET_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", path, ": it is a folder");
  // POSIX reads, not a stream's: a stream copy ends quietly at an I/O error (a network
  // filesystem's EIO), which would pass a cut-short file for a damaged one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DPUNET_CHECK(fd >= 0, "cannot read ", path, ": ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};  // also when the buffer cannot be had
  struct stat info {};
  std::string bytes(::fstat(fd, &info) == 0 && info.st_size > 0 ? static_cast<size_t>(info.st_size) : 0, '\0');
  size_t used = 0;
  for (;;) {
    char spill[1 << 16];  // past the size fstat gave (a file still growing, /proc files)
    const bool room = used < bytes.size();
    const ssize_t n = room ? ::read(fd, bytes.data() + used, bytes.size() - used) : ::read(fd, spill, sizeof(spill));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) DPUNET_FAIL("cannot read ", path, ": ", std::strerror(errno));
    if (n == 0) break;
    if (room) {
      used += static_cast<size_t>(n);
    } else {
      bytes.append(spill, static_cast<size_t>(n));
      used = bytes.size();
    }
  }
  bytes.resize(used);
  return bytes;
}

}  // namespace dpunet
