// Child processes for benchmarks: see child_output.h.
#include "common/child_output.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <new>

#include "common/error.h"

extern char** environ;

namespace dpunet {

ChildOutput run_child(const std::vector<std::string>& argv) {
  DPUNET_CHECK(!argv.empty(), "run_child: no program given");
  std::vector<char*> words;
  for (const std::string& word : argv) words.push_back(const_cast<char*>(word.c_str()));
  words.push_back(nullptr);

  int pipe_ends[2];
  DPUNET_CHECK(pipe2(pipe_ends, O_CLOEXEC) == 0, "cannot start ", argv[0], ": pipe: ", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec on the copy: the child keeps its stdout and nothing else.
  int spawned = posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);
  pid_t pid = 0;
  if (spawned == 0) spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, words.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_ends[1]);
  if (spawned != 0) {
    close(pipe_ends[0]);
    DPUNET_FAIL("cannot start ", argv[0], ": ", std::strerror(spawned));
  }

  ChildOutput result;
  std::array<char, 4096> chunk{};
  bool out_of_memory = false;
  int read_error = 0;  // the child is still waited for, below, before either is said
  for (;;) {
    const ssize_t n = read(pipe_ends[0], chunk.data(), chunk.size());
    if (n > 0) {
      try {
        result.output.append(chunk.data(), static_cast<size_t>(n));
      } catch (const std::bad_alloc&) {
        out_of_memory = true;
        break;
      }
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      read_error = errno;  // not an end of output: the caller would parse a cut-short one
      break;
    }
  }
  close(pipe_ends[0]);
  int status = 0;
  pid_t waited = 0;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  DPUNET_CHECK(waited == pid, "cannot wait for ", argv[0], ": ", std::strerror(errno));
  DPUNET_CHECK(!out_of_memory, argv[0], ": its output does not fit in memory");
  DPUNET_CHECK(read_error == 0, "cannot read the output of ", argv[0], ": ", std::strerror(read_error));
  result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + result.signal;
  return result;
}

}  // namespace dpunet
