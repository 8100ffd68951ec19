// BackgroundWriter: jobs run one at a time, in order, off the caller's thread, and a
// failure comes back to the caller at the next submit() or wait().
#include "support/catch.h"

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/background_writer.h"

using dpunet::checkpoint::BackgroundWriter;

TEST_CASE("BackgroundWriter runs jobs in order, one at a time, off the caller's thread", "[checkpoint]") {
  BackgroundWriter writer;
  std::vector<int> order;
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false}, on_caller_thread{false};
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 5; ++i) {
    writer.submit([&, i] {
      if (running.fetch_add(1) != 0) overlapped = true;
      if (std::this_thread::get_id() == caller) on_caller_thread = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      order.push_back(i);
      running.fetch_sub(1);
    });
  }
  writer.wait();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  CHECK_FALSE(overlapped);
  CHECK_FALSE(on_caller_thread);
}

TEST_CASE("BackgroundWriter hands a failed job's error to poll, submit or wait, once", "[checkpoint]") {
  BackgroundWriter writer;
  writer.submit([] { throw std::runtime_error("disk full"); });
  std::atomic<bool> newer_ran{false};
  // The newer job still runs: its snapshot is written while the caller handles the error.
  CHECK_THROWS_WITH(writer.submit([&] { newer_ran = true; }), "disk full");
  writer.wait();
  CHECK(newer_ran);

  writer.submit([] { throw std::runtime_error("disk full again"); });
  CHECK_THROWS_WITH(writer.wait(), "disk full again");
  CHECK_NOTHROW(writer.wait());  // reported once

  writer.submit([] { throw std::runtime_error("no space"); });
  bool reported = false;
  for (int i = 0; i < 2000 && !reported; ++i) {  // poll never blocks; the job ends within ms
    try {
      writer.poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } catch (const std::runtime_error& e) {
      reported = std::string(e.what()) == "no space";
    }
  }
  CHECK(reported);
  CHECK_NOTHROW(writer.poll());
}

TEST_CASE("BackgroundWriter::poll does not wait for a job in flight", "[checkpoint]") {
  BackgroundWriter writer;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  writer.submit([released] { released.wait(); });
  const auto start = std::chrono::steady_clock::now();
  writer.poll();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // the job never ends by itself
  release.set_value();
  writer.wait();
}

TEST_CASE("BackgroundWriter::idle_within waits at most its limit, and leaves a failure to wait", "[checkpoint]") {
  BackgroundWriter writer;
  CHECK(writer.idle_within(std::chrono::milliseconds(0)));  // nothing submitted
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  writer.submit([released] {
    released.wait();
    throw std::runtime_error("disk full");
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(writer.idle_within(std::chrono::milliseconds(50)));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50));
  release.set_value();
  CHECK(writer.idle_within(std::chrono::seconds(60)));
  CHECK(writer.idle_within(std::chrono::seconds(0)));  // still ended: the failure is not taken
  CHECK_THROWS_WITH(writer.wait(), "disk full");
  CHECK(writer.idle_within(std::chrono::milliseconds(0)));
}
