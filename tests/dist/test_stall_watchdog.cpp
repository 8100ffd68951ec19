// StallWatchdog with scripted collectives: completed ones are dropped, a failed or stalled
// one aborts the transport once and is raised on the caller's thread, and one nobody
// raises reaches the last resort.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "support/catch.h"

#include "common/error.h"
#include "dist/stall_watchdog.h"

using dpunet::dist::StallWatchdog;
using namespace std::chrono_literals;

namespace {

// What the watchdog did, recorded from its threads.
struct Observed {
  std::atomic<int> aborts{0};
  std::atomic<int> last_resorts{0};
  std::mutex mutex;
  std::string last_resort_message;
};

// Held by the callbacks too: the abort runs on a detached thread that may outlive the
// test case's frame.
using Seen = std::shared_ptr<Observed>;

StallWatchdog::Options options_for(const Seen& seen, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds grace = 10s) {
  StallWatchdog::Options options;
  options.timeout = timeout;
  options.poll_interval = 1ms;
  options.grace = grace;
  options.label = "rank 1 on node7";
  options.abort_transport = [seen] { ++seen->aborts; };
  options.last_resort = [seen](const std::string& message) {
    std::lock_guard<std::mutex> lock(seen->mutex);
    seen->last_resort_message = message;
    ++seen->last_resorts;
  };
  return options;
}

// Polls `condition` for up to 10 s; the watchdog's thread acts on its own schedule.
template <typename Condition>
bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string raised_message(StallWatchdog& watchdog) {
  try {
    watchdog.raise_if_failed();
  } catch (const dpunet::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Watchdog drops collectives that complete and reports nothing", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  std::atomic<bool> done{false};  // declared first: it outlives the watchdog's thread
  StallWatchdog watchdog(options_for(seen, 10min));
  watchdog.watch("all_reduce (Float, 8 elements)",
                 [&](std::string*) { return done ? StallWatchdog::State::kDone : StallWatchdog::State::kPending; });
  REQUIRE(watchdog.pending() == 1);
  done = true;
  REQUIRE(eventually([&] { return watchdog.pending() == 0; }));
  REQUIRE_NOTHROW(watchdog.raise_if_failed());
  REQUIRE_FALSE(watchdog.failure().has_value());
  REQUIRE(seen->aborts == 0);
}

TEST_CASE("Watchdog aborts a stalled collective and names it, the rank and the timeout", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  StallWatchdog watchdog(options_for(seen, 50ms));
  watchdog.watch("all_reduce (Float, 31037698 elements)", [](std::string*) { return StallWatchdog::State::kPending; });
  REQUIRE(eventually([&] { return watchdog.failure().has_value(); }));
  const std::string message = raised_message(watchdog);
  CHECK_THAT(message, HasSubstr("all_reduce (Float, 31037698 elements)"));
  CHECK_THAT(message, HasSubstr("has not completed after 0.05 s"));
  CHECK_THAT(message, HasSubstr("rank 1 on node7"));
  CHECK_THAT(message, HasSubstr("aborted"));
  REQUIRE(eventually([&] { return seen->aborts == 1; }));
  REQUIRE(watchdog.pending() == 0);
  // Once failed, it stays failed: later collectives are not watched, the error repeats.
  watchdog.watch("broadcast (Long, 1 elements)", [](std::string*) { return StallWatchdog::State::kPending; });
  REQUIRE(watchdog.pending() == 0);
  REQUIRE(raised_message(watchdog) == message);
  std::this_thread::sleep_for(20ms);
  REQUIRE(seen->aborts == 1);
  REQUIRE(seen->last_resorts == 0);
}

TEST_CASE("Watchdog reports a collective's own error at once", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  std::atomic<bool> broken{false};
  StallWatchdog watchdog(options_for(seen, 10min));
  watchdog.watch("all_gather (Double, 5 elements)", [&](std::string* error) {
    if (!broken) return StallWatchdog::State::kPending;
    *error = "unhandled system error (remote process exited)";
    return StallWatchdog::State::kFailed;
  });
  std::this_thread::sleep_for(10ms);
  REQUIRE_NOTHROW(watchdog.raise_if_failed());
  broken = true;
  REQUIRE(eventually([&] { return watchdog.failure().has_value(); }));
  const std::string message = raised_message(watchdog);
  CHECK_THAT(message, HasSubstr("all_gather (Double, 5 elements) failed on rank 1 on node7"));
  CHECK_THAT(message, HasSubstr("remote process exited"));
  REQUIRE(eventually([&] { return seen->aborts == 1; }));
}

TEST_CASE("Watchdog watches later collectives while earlier ones are pending", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  std::atomic<int> completed{0};
  StallWatchdog watchdog(options_for(seen, 10min));
  for (int i = 0; i < 3; ++i) {
    watchdog.watch("all_reduce #" + std::to_string(i), [&completed, i](std::string*) {
      return completed > i ? StallWatchdog::State::kDone : StallWatchdog::State::kPending;
    });
  }
  completed = 2;
  REQUIRE(eventually([&] { return watchdog.pending() == 1; }));
  completed = 3;
  REQUIRE(eventually([&] { return watchdog.pending() == 0; }));
  REQUIRE_FALSE(watchdog.failure().has_value());
}

TEST_CASE("A failure nobody raises within the grace period reaches the last resort", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  {
    StallWatchdog watchdog(options_for(seen, 20ms, /*grace=*/50ms));
    watchdog.watch("all_reduce (BFloat16, 3 elements)", [](std::string*) { return StallWatchdog::State::kPending; });
    REQUIRE(eventually([&] { return seen->last_resorts == 1; }));
    std::lock_guard<std::mutex> lock(seen->mutex);
    CHECK_THAT(seen->last_resort_message, HasSubstr("all_reduce (BFloat16, 3 elements) has not completed"));
  }
  REQUIRE(seen->last_resorts == 1);  // once only
}

TEST_CASE("A failure raised in time does not reach the last resort", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  // A grace period a loaded machine cannot miss between noticing the failure and raising it.
  StallWatchdog watchdog(options_for(seen, 20ms, /*grace=*/3s));
  watchdog.watch("barrier", [](std::string*) { return StallWatchdog::State::kPending; });
  REQUIRE(eventually([&] { return watchdog.failure().has_value(); }));
  REQUIRE_THROWS_AS(watchdog.raise_if_failed(), dpunet::Error);
  std::this_thread::sleep_for(3200ms);
  REQUIRE(seen->last_resorts == 0);
}

TEST_CASE("A poll that throws counts as a failed collective", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  StallWatchdog watchdog(options_for(seen, 10min));
  watchdog.watch("broadcast (Byte, 4 elements)", [](std::string*) -> StallWatchdog::State {
    throw std::runtime_error("cudaEventQuery: an illegal memory access was encountered");
  });
  REQUIRE(eventually([&] { return watchdog.failure().has_value(); }));
  CHECK_THAT(*watchdog.failure(), HasSubstr("illegal memory access"));
}

TEST_CASE("An abort that hangs reaches the last resort even after the failure was raised", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  auto release = std::make_shared<std::atomic<bool>>(false);
  StallWatchdog::Options options = options_for(seen, 20ms, /*grace=*/200ms);
  options.abort_transport = [release] {
    while (!*release) std::this_thread::sleep_for(1ms);
  };
  {
    StallWatchdog watchdog(options);
    watchdog.watch("all_reduce (Float, 2 elements)", [](std::string*) { return StallWatchdog::State::kPending; });
    REQUIRE(eventually([&] { return watchdog.failure().has_value(); }));
    REQUIRE_THROWS_AS(watchdog.raise_if_failed(), dpunet::Error);
    REQUIRE(eventually([&] { return seen->last_resorts == 1; }));
  }
  *release = true;  // lets the detached abort thread finish
}

TEST_CASE("wait_until_idle returns once the collectives are done or one fails", "[dist][watchdog]") {
  const Seen seen = std::make_shared<Observed>();
  auto done = std::make_shared<std::atomic<bool>>(false);
  StallWatchdog watchdog(options_for(seen, 10min));
  watchdog.wait_until_idle();  // nothing watched
  watchdog.watch("broadcast (Long, 1 elements)",
                 [done](std::string*) { return *done ? StallWatchdog::State::kDone : StallWatchdog::State::kPending; });
  std::thread finisher([done] {
    std::this_thread::sleep_for(20ms);
    *done = true;
  });
  watchdog.wait_until_idle();
  REQUIRE(watchdog.pending() == 0);
  finisher.join();

  StallWatchdog stalling(options_for(seen, 20ms));
  stalling.watch("barrier", [](std::string*) { return StallWatchdog::State::kPending; });
  stalling.wait_until_idle();
  REQUIRE(stalling.failure().has_value());
}
