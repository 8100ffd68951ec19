// Runs a program with its arguments as given (no shell between: a value with spaces or
// quotes stays one argument) and collects what it writes to stdout; its stderr stays the
// caller's, so the child's own errors reach the user.
#pragma once

#include <string>
#include <vector>

namespace dpunet {

struct ChildOutput {
  int status = 0;      // the exit code; 128 + N for a child ended by signal N
  int signal = 0;      // N when a signal ended it (the OOM killer's 9), else 0
  std::string output;  // everything it wrote to stdout
};

// argv[0] is the program's path. Throws dpunet::Error when it cannot be started.
ChildOutput run_child(const std::vector<std::string>& argv);

}  // namespace dpunet
