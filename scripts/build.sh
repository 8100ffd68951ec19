#!/usr/bin/env bash
# Configures (once) and builds dpunet into build/ (or $DPUNET_BUILD_DIR) with Ninja.
# Extra arguments configure again with them (CMake keeps them for later builds), e.g.
# -DDPUNET_WITH_NCCL=ON.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DPUNET_BUILD_DIR:-$root/build}

if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja "$@"
fi
cmake --build "$build"
