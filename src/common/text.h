// Small string tests C++17 lacks (std::string::ends_with is C++20).
#pragma once

#include <string>

namespace dpunet {

inline bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace dpunet
