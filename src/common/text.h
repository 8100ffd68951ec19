// Small string helpers: tests C++17 lacks (std::string::ends_with is C++20), counts with
// their nouns, edit distances for suggestions, and a hash every process computes alike.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace dpunet {

// " (text)", or nothing for an empty text: an optional remark inside a message.
inline std::string parenthesised(const std::string& text) {
  return text.empty() ? "" : " (" + text + ")";
}

inline bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

// "1 step", "2 steps": a count and its noun, singular for one ("batch", "batches": give
// the plural where it is not the noun and an s).
inline std::string counted(int64_t n, const std::string& noun, const std::string& plural = "") {
  return std::to_string(n) + " " + (n == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

// "12 MiB", rounded up: a size in a message.
inline std::string mebibytes(int64_t bytes) {
  return std::to_string((bytes + (int64_t{1} << 20) - 1) >> 20) + " MiB";
}

// Edits (insertions, deletions, substitutions, and swaps of two neighbouring letters,
// the commonest slip: "stpes") that turn `a` into `b`: how far a misspelt name is from
// one that exists.
inline size_t edit_distance(const std::string& a, const std::string& b) {
  // d[i][j]: the edits from a's first i letters to b's first j.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// A file name's last extension with its dot, in lower case (".png" for A.PNG; "" without one).
inline std::string lower_extension(const std::string& path) {
  const std::string name = path.substr(path.find_last_of('/') + 1);  // npos + 1 is 0
  const auto dot = name.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : name.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
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
