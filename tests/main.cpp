// Catch2's main for the dpunet test suite.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
