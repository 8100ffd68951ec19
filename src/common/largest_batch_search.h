// The search behind `bench train --max-batch`: the largest batch for which a try fits,
// with as few tries near the answer as a guess allows (each try at a large batch runs
// two training steps and autotunes cuDNN for the new shape).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace dpunet {

// The largest batch in [1, cap] for which `fits` holds, or 0 when not even 1 does,
// assuming every smaller batch fits too. `known`: a batch already seen to fit, or 0.
// `guess`: where the answer probably is (from memory use), or 0 for none: then the batch
// doubles from `known` until a try fails. With a guess, the first try is at the guess,
// then steps of a sixteenth of it, doubling, away from it until the answer is bracketed;
// a bisection ends the search either way.
int64_t largest_fitting_batch(int64_t known, int64_t guess, int64_t cap, const std::function<bool(int64_t)>& fits);

// A guess for largest_fitting_batch: the timed batch scaled by the device's free bytes
// over the timed step's peak (model state included, so it errs low), at most `cap`; 0 when
// either is unknown.
int64_t guess_largest_batch(int64_t timed_batch, int64_t peak_bytes, int64_t free_bytes, int64_t cap);

// Where to time steps once the search found `largest`, in order until one fits: the
// largest, then a sixteenth of it (at least 1) less each time, `tries` batches at most,
// none below 1. A timed run takes more steps than a try of the search, and at the edge of
// the device's memory the allocator's fragmentation can then run out.
std::vector<int64_t> batches_to_time(int64_t largest, int tries = 4);

}  // namespace dpunet
