#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole CTest suite.
set -euo pipefail
root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
build=${DPUNET_BUILD_DIR:-$root/build}

"$root/scripts/setup.sh"
"$root/scripts/build.sh"
# No tests found (a build configured without them) is a failure, not a pass.
ctest --test-dir "$build" --output-on-failure --no-tests=error "$@"
