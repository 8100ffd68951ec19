// Child processes for benchmarks: see child_output.h.
#include "common/child_output.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

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
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, words.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_ends[1]);
  if (spawned != 0) {
    close(pipe_ends[0]);
    DPUNET_FAIL("cannot start ", argv[0], ": ", std::strerror(spawned));
  }

  ChildOutput result;
  std::array<char, 4096> chunk{};
  for (;;) {
    const ssize_t n = read(pipe_ends[0], chunk.data(), chunk.size());
    if (n > 0) {
      result.output.append(chunk.data(), static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_ends[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace dpunet
