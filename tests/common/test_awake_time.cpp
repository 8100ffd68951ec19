// AwakeTime: a timeout clock that a long pause between two reads (a stopped process)
// advances by one capped step only.
#include "support/catch.h"

#include <chrono>
#include <thread>

#include "common/awake_time.h"

using namespace std::chrono_literals;

TEST_CASE("AwakeTime counts the time between frequent reads in full", "[common]") {
  dpunet::AwakeTime awake(1s);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(5ms);
    awake.now();
  }
  const auto wall = std::chrono::steady_clock::now() - start;
  CHECK(awake.last() >= 100ms);
  CHECK(awake.last() <= wall);
}

TEST_CASE("AwakeTime counts a long pause between two reads as one capped step", "[common]") {
  dpunet::AwakeTime awake(20ms);
  std::this_thread::sleep_for(200ms);  // as if the process had been stopped
  CHECK(awake.now() == 20ms);
  CHECK(awake.last() == 20ms);
  std::this_thread::sleep_for(5ms);
  CHECK(awake.now() >= 25ms);
  CHECK(awake.last() < 45ms);
}
