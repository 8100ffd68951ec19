// DistributedSampler: seeded Fisher-Yates per epoch, strided split over ranks.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"
#include "data/random.h"

namespace dpunet::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, int rank, int world_size, SamplerOptions options)
    : dataset_size_(dataset_size), rank_(rank), world_size_(world_size), options_(options) {
  DPUNET_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "sampler: rank ", rank, " outside world size ",
               world_size);
  DPUNET_CHECK(dataset_size > 0, "sampler: the dataset is empty");
  DPUNET_CHECK(dataset_size >= world_size, "sampler: the dataset has ", dataset_size, " samples, fewer than the ",
               world_size, " ranks; every rank needs at least one");
  samples_per_rank_ =
      options.remainder == Remainder::kDrop ? dataset_size / world_size : (dataset_size + world_size - 1) / world_size;
}

std::vector<int64_t> DistributedSampler::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(dataset_size_);
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options_.shuffle) {
    Rng rng(derive_seed({options_.seed, static_cast<uint64_t>(epoch), 0x5A3D1E5ull}));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      std::swap(order[i], order[static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1))]);
    }
  }
  return order;
}

std::vector<int64_t> DistributedSampler::rank_indices(int64_t epoch, int64_t start) const {
  DPUNET_CHECK(start >= 0, "sampler: negative position ", start);
  const int64_t left = std::max<int64_t>(0, dataset_size_ - start);
  const int64_t count =
      options_.remainder == Remainder::kDrop ? left / world_size_ : (left + world_size_ - 1) / world_size_;
  const std::vector<int64_t> order = epoch_order(epoch);
  std::vector<int64_t> mine;
  mine.reserve(count);
  for (int64_t k = 0; k < count; ++k) {
    // Positions past the end wrap around: the padding repeats the epoch's first samples.
    mine.push_back(order[(start + rank_ + k * world_size_) % dataset_size_]);
  }
  return mine;
}

}  // namespace dpunet::data
