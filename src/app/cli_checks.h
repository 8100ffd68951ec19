// Checks for number options whose refusals read plainly: CLI11's PositiveNumber
// answers "--size 0" with a range up to 1.8e308.
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
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

// A whole number from 0 to 2^64 - 1, for unsigned options (seeds): strtoull alone would
// take -1 for 2^64 - 1.
inline CLI::Validator unsigned_number() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        errno = 0;
        char* end = nullptr;
        std::strtoull(value.c_str(), &end, 10);
        const bool whole =
            !value.empty() && value[0] >= '0' && value[0] <= '9' && end != nullptr && *end == '\0' && errno != ERANGE;
        return whole ? std::string() : "must be a whole number from 0 to 2^64-1, got " + value;
      },
      ">= 0");
}

// A number in [low, high]: "must be a number from 0 to 0.9, got nan" (CLI11's Range lets
// NaN through: no comparison with it fails).
inline CLI::Validator number_from(double low, double high, const std::string& text) {
  return CLI::Validator(
      [low, high, text](std::string& value) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double number = std::strtod(value.c_str(), &end);
        // ERANGE also flags an underflow (1e-320), which is still a number.
        const bool read = !value.empty() && end != nullptr && *end == '\0' && std::isfinite(number);
        return read && number >= low && number <= high ? std::string() : "must be a number " + text + ", got " + value;
      },
      "[" + text + "]");
}

// A finite number above zero: "must be a number above 0, got nan".
inline CLI::Validator above_zero() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double number = std::strtod(value.c_str(), &end);
        const bool read = !value.empty() && end != nullptr && *end == '\0' && errno != ERANGE;
        return read && std::isfinite(number) && number > 0 ? std::string() : "must be a number above 0, got " + value;
      },
      "> 0");
}

// A path or word that must not be empty (an unset shell variable): "empty (an unset variable?)".
inline CLI::Validator not_empty() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        return value.empty() ? std::string("empty (an unset variable?)") : std::string();
      },
      "");
}

}  // namespace dpunet::app
