// Configs compiled into the binary, so `dpunet train` runs with no file at hand.
#pragma once

namespace dpunet::app {

// configs/quickstart.yaml as it was at build time.
const char* quickstart_config();

}  // namespace dpunet::app
