// Checks across keys of a Config (each key's own type and range are checked as it is
// read). Errors name the keys involved and where they were set: the place `origins`
// gives for one of them (a --set first, the latest word on it), else `source`.
#pragma once

#include <map>
#include <string>

#include "config/config.h"

namespace dpunet::config {

// Where each key was set: "FILE:LINE:COLUMN" or "--set KEY=VALUE".
using Origins = std::map<std::string, std::string>;

void validate(const Config& config, const std::string& source, const Origins& origins = {});
// The checks across keys a file describing a model's weights must pass (predict and
// export --config): those of the normalisation statistics, not the training recipe's.
void validate_model_description(const Config& config, const std::string& source, const Origins& origins = {});

}  // namespace dpunet::config
