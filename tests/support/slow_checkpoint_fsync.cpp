// Preloaded (LD_PRELOAD) into `dpunet train` by a test: an fsync of a checkpoint file
// (a path with /checkpoints/step- in it) takes DPUNET_TEST_FSYNC_DELAY_S seconds longer,
// as on a slow or busy network file system. Every other fsync is the C library's own.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" int fsync(int fd) {
  using Fsync = int (*)(int);
  static const Fsync real = reinterpret_cast<Fsync>(dlsym(RTLD_NEXT, "fsync"));
  char link[64];
  char path[4096];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const ssize_t length = readlink(link, path, sizeof(path) - 1);
  const char* delay = std::getenv("DPUNET_TEST_FSYNC_DELAY_S");
  if (length > 0 && delay != nullptr) {
    path[length] = '\0';
    if (std::strstr(path, "/checkpoints/step-") != nullptr) sleep(static_cast<unsigned>(std::atoi(delay)));
  }
  return real(fd);
}
