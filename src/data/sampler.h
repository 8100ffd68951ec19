// Distributed sampler: each epoch, a seeded shuffle of the global index, split into
// disjoint, equal-sized per-rank shares (rank r takes positions r, r + W, r + 2W, ...),
// so every rank runs the same number of steps. Its state is (epoch, position) where
// position counts samples consumed by all ranks together, so a resumed run, even on a
// different number of ranks, continues with the samples that were not yet seen.
#pragma once

#include <cstdint>
#include <vector>

namespace dpunet::data {

enum class Remainder {
  kDrop,  // the last size % world samples of each epoch's order are skipped
  kPad,   // the order is extended with its first samples to a multiple of world
};

struct SamplerOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  Remainder remainder = Remainder::kPad;
};

struct SamplerState {
  int64_t epoch = 0;
  int64_t position = 0;  // samples consumed in this epoch, summed over ranks
};

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int rank, int world_size, SamplerOptions options = {});

  int64_t samples_per_rank() const { return samples_per_rank_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // This rank's sample indices for `epoch`, in the order they are consumed, from global
  // position `start` on (a resumed epoch): rank r takes positions start + r + kW. Every
  // rank gets the same count, so a run resumed on another world size neither repeats
  // nor skips a sample of the epoch (beyond the padding or dropping of its remainder).
  std::vector<int64_t> rank_indices(int64_t epoch, int64_t start = 0) const;
  // The global order of `epoch` (before the split), for tests and tools.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  int64_t dataset_size_;
  int rank_;
  int world_size_;
  SamplerOptions options_;
  int64_t samples_per_rank_;
};

}  // namespace dpunet::data
