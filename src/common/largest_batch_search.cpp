#include "common/largest_batch_search.h"

#include <algorithm>

#include "common/error.h"

namespace dpunet {

int64_t largest_fitting_batch(int64_t known, int64_t guess, int64_t cap, const std::function<bool(int64_t)>& fits) {
  // The bound keeps cap + 1 and the doubled steps far from overflowing.
  DPUNET_CHECK(cap >= 1 && cap <= (int64_t{1} << 40), "largest_fitting_batch: cap ", cap, " outside [1, 2^40]");
  DPUNET_CHECK(known >= 0 && known <= cap, "largest_fitting_batch: known batch ", known, " outside [0, ", cap, "]");
  int64_t good = known;   // the largest batch seen to fit
  int64_t bad = cap + 1;  // the smallest seen not to fit; past the cap: none tried
  if (good < cap) {
    const bool guessed = guess > good;
    const int64_t first = guessed ? std::min(guess, cap) : std::min(std::max<int64_t>(2 * good, 1), cap);
    // Without a guess the steps double the batch itself (pure doubling); with one they
    // start small, since the answer is probably near.
    int64_t step = guessed ? std::max<int64_t>(1, first / 16) : std::max<int64_t>(1, first);
    if (fits(first)) {
      good = first;
      while (good < cap) {
        const int64_t next = std::min(cap, good + step);
        if (!fits(next)) {
          bad = next;
          break;
        }
        good = next;
        step *= 2;
      }
    } else {
      bad = first;
      if (guessed) {  // down from the guess until a try fits
        while (bad - good > 1) {
          const int64_t next = std::max(good + 1, bad - step);
          if (fits(next)) {
            good = next;
            break;
          }
          bad = next;
          step *= 2;
        }
      }
    }
  }
  while (bad - good > 1) {
    const int64_t middle = good + (bad - good) / 2;
    (fits(middle) ? good : bad) = middle;
  }
  return good;
}

int64_t guess_largest_batch(int64_t timed_batch, int64_t peak_bytes, int64_t free_bytes, int64_t cap) {
  if (timed_batch <= 0 || peak_bytes <= 0 || free_bytes <= 0) return 0;
  const double guess =
      static_cast<double>(timed_batch) * static_cast<double>(free_bytes) / static_cast<double>(peak_bytes);
  return static_cast<int64_t>(std::min(guess, static_cast<double>(cap)));
}

}  // namespace dpunet
