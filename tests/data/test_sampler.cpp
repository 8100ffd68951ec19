// Distributed sampler: disjoint equal shares that cover the epoch, seeded shuffles, and
// positions that resume exactly, also on a different number of ranks.
#include "support/catch.h"

#include <algorithm>
#include <set>

#include "data/sampler.h"

using dpunet::data::DistributedSampler;
using dpunet::data::Remainder;
using dpunet::data::SamplerOptions;

TEST_CASE("ranks get disjoint, equal shares that cover the epoch", "[data]") {
  const int64_t size = GENERATE(12, 13, 17);
  const int world = GENERATE(1, 2, 3, 5);
  const Remainder remainder = GENERATE(Remainder::kDrop, Remainder::kPad);
  SamplerOptions options;
  options.seed = 7;
  options.remainder = remainder;
  std::multiset<int64_t> seen;
  int64_t share = -1;
  for (int rank = 0; rank < world; ++rank) {
    const DistributedSampler sampler(size, rank, world, options);
    const auto indices = sampler.rank_indices(/*epoch=*/3);
    if (share < 0) share = static_cast<int64_t>(indices.size());
    REQUIRE(static_cast<int64_t>(indices.size()) == share);  // equal: no rank waits on another
    seen.insert(indices.begin(), indices.end());
  }
  const std::set<int64_t> distinct(seen.begin(), seen.end());
  if (remainder == Remainder::kDrop) {
    CHECK(share == size / world);
    CHECK(distinct.size() == seen.size());  // no sample twice
    CHECK(static_cast<int64_t>(distinct.size()) == size - size % world);
  } else {
    CHECK(share == (size + world - 1) / world);
    CHECK(static_cast<int64_t>(distinct.size()) == size);  // every sample at least once
  }
  for (int64_t i : distinct) CHECK((i >= 0 && i < size));
}

TEST_CASE("shares are whole batches: padding covers every sample, dropping skips less than a global batch", "[data]") {
  const int64_t size = GENERATE(12, 13, 17);
  const int world = GENERATE(1, 2, 3);
  const int64_t batch = GENERATE(2, 3);
  const Remainder remainder = GENERATE(Remainder::kDrop, Remainder::kPad);
  SamplerOptions options;
  options.seed = 7;
  options.remainder = remainder;
  options.batch = batch;
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < world; ++rank) {
    const DistributedSampler sampler(size, rank, world, options);
    const auto indices = sampler.rank_indices(/*epoch=*/1);
    REQUIRE(static_cast<int64_t>(indices.size()) == sampler.samples_per_rank());
    CHECK(indices.size() % batch == 0);
    // Padding copies are the epoch's repeats: the order wrapped once before them.
    for (size_t k = 0; k < indices.size(); ++k) {
      CHECK(sampler.repeat_of(0, static_cast<int64_t>(k)) == (rank + static_cast<int64_t>(k) * world >= size ? 1 : 0));
    }
    seen.insert(indices.begin(), indices.end());
  }
  const std::set<int64_t> distinct(seen.begin(), seen.end());
  const int64_t global = world * batch;
  if (remainder == Remainder::kDrop) {
    CHECK(distinct.size() == seen.size());
    CHECK(static_cast<int64_t>(seen.size()) == size / global * global);
  } else {
    CHECK(static_cast<int64_t>(distinct.size()) == size);
    CHECK(static_cast<int64_t>(seen.size()) == (size + global - 1) / global * global);
  }
}

TEST_CASE("the shuffle depends on seed and epoch only", "[data]") {
  SamplerOptions a;
  a.seed = 1;
  SamplerOptions b = a;
  b.seed = 2;
  const DistributedSampler s1(100, 0, 1, a), s1_again(100, 0, 1, a), s2(100, 0, 1, b);
  CHECK(s1.rank_indices(0) == s1_again.rank_indices(0));
  CHECK(s1.rank_indices(0) != s1.rank_indices(1));
  CHECK(s1.rank_indices(0) != s2.rank_indices(0));
  auto sorted = s1.rank_indices(4);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) REQUIRE(sorted[i] == i);
  SamplerOptions ordered;
  ordered.shuffle = false;
  CHECK(DistributedSampler(6, 1, 2, ordered).rank_indices(9) == std::vector<int64_t>{1, 3, 5});
}

TEST_CASE("a saved position resumes where the run stopped, also on another world size", "[data]") {
  const int64_t size = 60;
  SamplerOptions options;
  options.seed = 3;
  options.remainder = Remainder::kDrop;
  // Two ranks consumed 8 samples each: 16 of the epoch's order.
  const dpunet::data::SamplerState state{/*epoch=*/2, /*position=*/16};
  const auto order = DistributedSampler(size, 0, 2, options).epoch_order(2);
  SECTION("same world size: each rank continues its own share") {
    for (int rank = 0; rank < 2; ++rank) {
      const DistributedSampler sampler(size, rank, 2, options);
      const auto full = sampler.rank_indices(2);
      const auto rest = sampler.rank_indices(2, state.position);
      REQUIRE(rest.size() == full.size() - 8);
      CHECK(std::equal(rest.begin(), rest.end(), full.begin() + 8));
      CHECK(rest.front() == order[16 + rank]);
    }
  }
  SECTION("four ranks split what is left of the epoch") {
    std::set<int64_t> rest;
    for (int rank = 0; rank < 4; ++rank) {
      const DistributedSampler sampler(size, rank, 4, options);
      const auto indices = sampler.rank_indices(2, state.position);
      CHECK(indices.size() == 11);
      rest.insert(indices.begin(), indices.end());
    }
    const std::set<int64_t> expected(order.begin() + 16, order.end());
    CHECK(rest == expected);
  }
}

TEST_CASE("resuming on a world size that does not divide the position repeats and skips nothing", "[data]") {
  const int64_t size = 60;
  SamplerOptions options;
  options.seed = 5;
  // Three ranks consumed 5 samples each: 15 of the epoch's order; two ranks go on.
  const int64_t position = 15;
  const auto order = DistributedSampler(size, 0, 3, options).epoch_order(1);
  for (const Remainder remainder : {Remainder::kDrop, Remainder::kPad}) {
    options.remainder = remainder;
    std::multiset<int64_t> rest;
    std::vector<size_t> counts;
    for (int rank = 0; rank < 2; ++rank) {
      const auto indices = DistributedSampler(size, rank, 2, options).rank_indices(1, position);
      counts.push_back(indices.size());
      rest.insert(indices.begin(), indices.end());
    }
    CHECK(counts[0] == counts[1]);
    // 45 samples are left: drop skips the last one, pad repeats the epoch's first.
    std::multiset<int64_t> expected(order.begin() + position, order.end() - (remainder == Remainder::kDrop ? 1 : 0));
    if (remainder == Remainder::kPad) expected.insert(order[0]);
    CHECK(rest == expected);
  }
}

TEST_CASE("fewer samples than ranks is an error", "[data]") {
  CHECK_THROWS_WITH(DistributedSampler(2, 0, 3), HasSubstr("2 samples") && HasSubstr("3 ranks"));
  CHECK_THROWS_WITH(DistributedSampler(0, 0, 1), HasSubstr("empty"));
}
