// An exception's message for a user: torch's errors without the C++ backtrace they carry.
#pragma once

#include <exception>
#include <string>

#include <c10/util/Exception.h>

namespace dpunet {

inline std::string exception_message(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  return c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
}

}  // namespace dpunet
