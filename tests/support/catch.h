// The test suite's one way into Catch2, v2 (catch2/catch.hpp: Debian 12, Ubuntu 22.04)
// or v3 (Debian 13, Ubuntu 24.04; CMake sets DPUNET_CATCH2_V3), with the names that
// differ between the two under one spelling: Approx, and HasSubstr for "the string
// contains this text" (v2's Contains, v3's ContainsSubstring; v3's Contains matches
// range elements instead).
#pragma once

#include <string>

#if DPUNET_CATCH2_V3
#include <catch2/catch_all.hpp>
using Catch::Approx;
inline auto HasSubstr(const std::string& text) {
  return Catch::Matchers::ContainsSubstring(text);
}
#else
#include <catch2/catch.hpp>
inline auto HasSubstr(const std::string& text) {
  return Catch::Matchers::Contains(text);
}
#endif

// A test that needs what this machine lacks (a GPU, NCCL, torch in Python) says so with
// this and returns: CTest reports it skipped (SKIP_REGULAR_EXPRESSION in
// tests/CMakeLists.txt), by a marker no program's output holds, so that a failing test
// whose output happens to say "skipped" is not taken for one.
#define DPUNET_SKIP(reason) WARN("[dpunet test skipped] " reason)
