// Small string helpers: tests C++17 lacks (std::string::ends_with is C++20), and a hash
// every process computes alike.
#pragma once

#include <cstdint>
#include <string>

namespace dpunet {

inline bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

// FNV-1a: the same value in every process, for comparing text across ranks (std::hash
// need not be the same in two builds of the standard library).
inline uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace dpunet
