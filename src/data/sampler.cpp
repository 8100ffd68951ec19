// DistributedSampler: seeded Fisher-Yates per epoch, strided split over ranks.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"
#include "common/text.h"
#include "data/random.h"

namespace dpunet::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, int rank, int world_size, SamplerOptions options)
    : dataset_size_(dataset_size), rank_(rank), world_size_(world_size), options_(options) {
  DPUNET_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "sampler: rank ", rank, " outside world size ",
               world_size);
  DPUNET_CHECK(dataset_size > 0, "sampler: ", options.dataset, " is empty");
  DPUNET_CHECK(dataset_size >= world_size, "sampler: ", options.dataset, " has ", counted(dataset_size, "sample"),
               ", fewer than the ", world_size, " ranks; every rank needs at least one");
  DPUNET_CHECK(options.batch >= 1, "sampler: batch must be at least 1, got ", options.batch);
  samples_per_rank_ = share_of(dataset_size);
  DPUNET_CHECK(samples_per_rank_ > 0, "sampler: ", options.dataset, " has ", counted(dataset_size, "sample"),
               ": not one batch of ", options.batch, " on each of ", world_size,
               " ranks (use a smaller train.batch_size, fewer ranks, or data.remainder: pad)");
}

int64_t DistributedSampler::share_of(int64_t left) const {
  const int64_t global_batch = options_.batch * world_size_;
  const int64_t batches =
      options_.remainder == Remainder::kDrop ? left / global_batch : (left + global_batch - 1) / global_batch;
  return batches * options_.batch;
}

int64_t DistributedSampler::repeat_of(int64_t start, int64_t k) const {
  return (start + rank_ + k * world_size_) / dataset_size_;
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
  const int64_t count = share_of(std::max<int64_t>(0, dataset_size_ - start));
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
