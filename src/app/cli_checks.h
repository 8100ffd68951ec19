// Checks for whole-number options whose refusals read plainly: CLI11's PositiveNumber
// answers "--size 0" with a range up to 1.8e308.
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace dpunet::app {

// A whole number of at least `minimum`: "must be a whole number of at least 1, got 0".
inline CLI::Validator at_least(long long minimum) {
  const std::string wanted = "must be a whole number of at least " + std::to_string(minimum);
  return CLI::Validator(
      [minimum, wanted](std::string& value) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long number = std::strtoll(value.c_str(), &end, 10);
        const bool whole = !value.empty() && end != nullptr && *end == '\0' && errno != ERANGE;
        return whole && number >= minimum ? std::string() : wanted + ", got " + value;
      },
      ">= " + std::to_string(minimum));
}

}  // namespace dpunet::app
