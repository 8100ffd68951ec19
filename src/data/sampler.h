// Distributed sampler: each epoch, a seeded shuffle of the global index, split into
// disjoint, equal-sized per-rank shares (rank r takes positions r, r + W, r + 2W, ...)
// of whole batches, so every rank runs the same number of full steps. Its state is (epoch, position) where
// position counts samples consumed by all ranks together, so a resumed run, even on a
// different number of ranks, continues with the samples that were not yet seen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::data {

// What happens to the samples of an epoch that do not fill a last global batch (world
// size x per-rank batch).
enum class Remainder {
  kDrop,  // they are skipped this epoch (another shuffle skips others next epoch)
  kPad,   // the order is extended with its first samples: every sample is seen
};

struct SamplerOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  Remainder remainder = Remainder::kPad;
  int64_t batch = 1;                    // per rank: each rank's share is a whole number of batches
  std::string dataset = "the dataset";  // what errors call it (data.train and its shards)
};

struct SamplerState {
  int64_t epoch = 0;
  int64_t position = 0;  // samples consumed in this epoch, summed over ranks
};

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int rank, int world_size, SamplerOptions options = {});

  int64_t samples_per_rank() const { return samples_per_rank_; }
  int64_t batch() const { return options_.batch; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // How many times the epoch's order has wrapped around before the k-th index of
  // rank_indices(epoch, start): 0, or 1 and up for padding repeats.
  int64_t repeat_of(int64_t start, int64_t k) const;
  // This rank's sample indices for `epoch`, in the order they are consumed, from global
  // position `start` on (a resumed epoch): rank r takes positions start + r + kW. Every
  // rank gets the same count, a multiple of the batch, so a run resumed on another world
  // size neither repeats nor skips a sample of the epoch (beyond the padding or dropping
  // of its remainder).
  std::vector<int64_t> rank_indices(int64_t epoch, int64_t start = 0) const;
  // The global order of `epoch` (before the split), for tests and tools.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  int64_t dataset_size_;
  int rank_;
  int world_size_;
  SamplerOptions options_;
  // Samples per rank from `left` samples of an epoch, in whole batches.
  int64_t share_of(int64_t left) const;

  int64_t samples_per_rank_;
};

}  // namespace dpunet::data
