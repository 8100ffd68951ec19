// Runs a shell command for end-to-end tests and collects its exit code and output.
#pragma once

#include <string>

namespace dpunet::test {

struct CommandResult {
  int exit_code = -1;  // 128 + signal when a signal ended it
  double seconds = 0;
  std::string output;  // stdout, plus stderr when the command redirects it
};

CommandResult run_command(const std::string& command);

// `text` as an extended regular expression that matches it literally, for `pgrep -f`
// patterns that hold paths (a clone in ~/c++/ would otherwise not match itself).
std::string regex_literal(const std::string& text);

}  // namespace dpunet::test
