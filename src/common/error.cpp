// Formatting of dpunet::Error messages.
#include "common/error.h"

#include "common/process_label.h"

namespace dpunet::detail {

void throw_error(const char* file, int line, const std::string& what) {
  throw Error(concat(what, " (", file, ":", line, ")"));
}

void throw_agreed_error(const char* file, int line, const std::string& what, bool rank_specific) {
  throw AgreedError(concat(what, " (", file, ":", line, ")"), rank_specific);
}

void throw_call_error(const char* file, int line, const std::string& what) {
  throw Error(concat(what, " [", process_label(), "] (", file, ":", line, ")"));
}

}  // namespace dpunet::detail
