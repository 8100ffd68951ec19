// run_command: popen, read to the end, pclose.
#include "support/run_command.h"

#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "common/error.h"

namespace dpunet::test {

CommandResult run_command(const std::string& command) {
  const auto start = std::chrono::steady_clock::now();
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  DPUNET_CHECK(pipe != nullptr, "cannot run: ", command);
  std::array<char, 4096> chunk{};
  while (fgets(chunk.data(), chunk.size(), pipe) != nullptr) result.output += chunk.data();
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string regex_literal(const std::string& text) {
  std::string literal;
  for (const char c : text) {
    if (std::string_view("\\.^$|?*+()[]{}").find(c) != std::string_view::npos) literal += '\\';
    literal += c;
  }
  return literal;
}

}  // namespace dpunet::test
