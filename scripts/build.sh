#!/usr/bin/env bash
# Configures (once) and builds dpunet into build/ (or $DPUNET_BUILD_DIR) with Ninja.
# Extra arguments configure again with them (CMake keeps them for later builds), e.g.
# -DDPUNET_WITH_NCCL=ON.
set -euo pipefail
root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
build=${DPUNET_BUILD_DIR:-$root/build}

# A build folder another generator configured (cmake without -G) cannot switch to Ninja.
generator=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [ -n "$generator" ] && [ "$generator" != Ninja ]; then
  echo "build.sh: $build was configured with the '$generator' generator; this script builds with Ninja:" \
       "remove $build, or build elsewhere with DPUNET_BUILD_DIR=DIR" >&2
  exit 1
fi
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja "$@"
fi
cmake --build "$build"
