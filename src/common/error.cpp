// Formatting of dpunet::Error messages.
#include "common/error.h"

namespace dpunet::detail {

void throw_error(const char* file, int line, const std::string& what) {
  throw Error(concat(what, " (", file, ":", line, ")"));
}

}  // namespace dpunet::detail
