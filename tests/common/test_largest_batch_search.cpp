// The largest-batch search of `bench train --max-batch` against a device that fits every
// batch up to a limit: the answer is exact from any start and guess, and a good guess
// saves tries at large batches (each a real training step on a GPU).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "support/catch.h"

#include "common/largest_batch_search.h"

using dpunet::guess_largest_batch;
using dpunet::largest_fitting_batch;

namespace {

struct Device {
  int64_t limit;               // the largest batch that fits
  std::vector<int64_t> tried;  // batches tried, in order
  bool operator()(int64_t batch) {
    tried.push_back(batch);
    return batch <= limit;
  }
};

int64_t search(Device& device, int64_t known, int64_t guess, int64_t cap) {
  return largest_fitting_batch(known, guess, cap, [&](int64_t b) { return device(b); });
}

}  // namespace

TEST_CASE("the largest-batch search finds the limit exactly from any start and guess", "[common]") {
  for (int64_t limit : {1, 2, 7, 8, 9, 85, 164, 171, 333, 1000, 4095, 4096, 5000}) {
    for (int64_t known : {0, 1, 8}) {
      if (known > limit) continue;
      for (int64_t guess : {0, 1, 5, 100, 150, 164, 170, 300, 4096, 9000}) {
        Device device{limit, {}};
        INFO("limit " << limit << ", known " << known << ", guess " << guess);
        CHECK(search(device, known, guess, 4096) == std::min<int64_t>(limit, 4096));
        for (int64_t b : device.tried) {  // never past the cap, never below 1
          CHECK(b >= 1);
          CHECK(b <= 4096);
        }
      }
    }
  }
}

TEST_CASE("the largest-batch search without a guess doubles from the known batch", "[common]") {
  Device device{164, {}};
  CHECK(search(device, 8, 0, 4096) == 164);
  REQUIRE(device.tried.size() >= 5);
  const std::vector<int64_t> doubling(device.tried.begin(), device.tried.begin() + 5);
  CHECK(doubling == std::vector<int64_t>{16, 32, 64, 128, 256});
}

TEST_CASE("a close guess takes fewer tries at large batches than doubling", "[common]") {
  // The H200's figures at 572x572: 7520 MB at batch 8, 164 the largest without
  // checkpointing; the guess from 149 GB free is 158.
  const int64_t guess = guess_largest_batch(8, 7'520'000'000, 149'000'000'000, 4096);
  CHECK(guess == 158);
  Device guessed{164, {}}, doubled{164, {}};
  CHECK(search(guessed, 8, guess, 4096) == 164);
  CHECK(search(doubled, 8, 0, 4096) == 164);
  auto large = [](const Device& d) {
    int64_t n = 0;
    for (int64_t b : d.tried) n += b >= 128 ? 1 : 0;
    return n;
  };
  INFO("tries with the guess: " << guessed.tried.size() << ", by doubling: " << doubled.tried.size());
  CHECK(guessed.tried.size() <= 6);
  CHECK(large(guessed) < large(doubled));
  // A guess too high (rare: the guess errs low, the timed peak holding the model's
  // state) walks down in growing steps, then bisects: about what doubling costs.
  Device high{164, {}};
  CHECK(search(high, 8, 300, 4096) == 164);
  CHECK(high.tried.size() <= doubled.tried.size() + 1);
}

TEST_CASE("no guess without a peak, free memory or timed batch", "[common]") {
  CHECK(guess_largest_batch(8, 0, 1000, 4096) == 0);
  CHECK(guess_largest_batch(8, 1000, 0, 4096) == 0);
  CHECK(guess_largest_batch(0, 1000, 1000, 4096) == 0);
  CHECK(guess_largest_batch(4, 1000, 5000, 4096) == 20);
  CHECK(guess_largest_batch(4, 1, int64_t{1} << 62, 4096) == 4096);  // at most the cap
}

TEST_CASE("the largest-batch search refuses a known batch or cap outside its range", "[common]") {
  Device device{10, {}};
  CHECK_THROWS_WITH(search(device, 20, 0, 16), HasSubstr("known batch 20 outside [0, 16]"));
  CHECK_THROWS_WITH(search(device, -1, 0, 16), HasSubstr("known batch -1 outside [0, 16]"));
  CHECK_THROWS_WITH(search(device, 0, 0, 0), HasSubstr("cap 0 outside [1, 2^40]"));
  CHECK_THROWS_WITH(search(device, 0, 0, (int64_t{1} << 40) + 1), HasSubstr("cap 1099511627777 outside [1, 2^40]"));
}

TEST_CASE("the largest-batch search reports 0 when nothing fits and tries nothing past a known cap", "[common]") {
  for (int64_t guess : {0, 1, 3, 100}) {
    Device none{0, {}};
    CHECK(search(none, 0, guess, 16) == 0);
  }
  Device full{100, {}};
  CHECK(search(full, 16, 40, 16) == 16);
  CHECK(full.tried.empty());
  for (int64_t cap : {1, 2, 3, 5}) {  // small caps, every limit and guess
    for (int64_t limit = 0; limit <= cap + 1; ++limit) {
      for (int64_t guess = 0; guess <= cap + 2; ++guess) {
        Device device{limit, {}};
        INFO("cap " << cap << ", limit " << limit << ", guess " << guess);
        CHECK(search(device, 0, guess, cap) == std::min(limit, cap));
      }
    }
  }
}
