// Checks across keys of a Config (each key's own type and range are checked as it is
// read). Errors name `source` and the keys involved.
#pragma once

#include <string>

#include "config/config.h"

namespace dpunet::config {

void validate(const Config& config, const std::string& source);

}  // namespace dpunet::config
