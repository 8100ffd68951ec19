// The search behind `bench train --max-batch`: the largest batch for which a try fits,
// with as few tries near the answer as a guess allows (each try at a large batch runs
// the timed training steps and autotunes cuDNN for the new shape).
#pragma once

#include <cstdint>
#include <functional>

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

}  // namespace dpunet
