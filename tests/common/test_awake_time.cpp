// AwakeTime: a timeout clock that a long pause between two reads (a stopped process)
// advances by one capped step only.
#include "support/catch.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/awake_time.h"

using namespace std::chrono_literals;

TEST_CASE("AwakeTime counts the time between frequent reads in full", "[common]") {
  const auto start = std::chrono::steady_clock::now();
  dpunet::AwakeTime awake(1s);
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

TEST_CASE("wait_for_awake returns when ready, and gives up after the timeout", "[common]") {
  std::mutex mutex;
  std::condition_variable condition;
  std::unique_lock<std::mutex> lock(mutex);
  CHECK(dpunet::wait_for_awake(condition, lock, 10s, [] { return true; }));
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(dpunet::wait_for_awake(condition, lock, 300ms, [] { return false; }));
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  bool ready = false;
  std::thread other([&] {
    std::this_thread::sleep_for(50ms);
    std::lock_guard<std::mutex> guard(mutex);
    ready = true;
    condition.notify_all();
  });
  CHECK(dpunet::wait_for_awake(condition, lock, 10s, [&] { return ready; }));
  lock.unlock();
  other.join();
}
