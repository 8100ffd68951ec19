// Bucket packing rules, without any communication.
#include "support/catch.h"

#include "common/error.h"
#include "dist/bucket_plan.h"

using dpunet::dist::BucketCaps;
using dpunet::dist::ParamSlot;
using dpunet::dist::plan_buckets;

namespace {
std::vector<size_t> reversed(size_t n) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = n - 1 - i;
  return order;
}
}  // namespace

TEST_CASE("Buckets fill in the given order, the first and last ones small", "[dist]") {
  const std::vector<ParamSlot> slots(10, ParamSlot{100, "f32"});
  const auto buckets = plan_buckets(slots, reversed(10), BucketCaps{150, 300, 250});
  REQUIRE(buckets == std::vector<std::vector<size_t>>{{9}, {8, 7, 6}, {5, 4, 3}, {2}, {1, 0}});
}

TEST_CASE("A parameter larger than the cap gets a bucket of its own", "[dist]") {
  const std::vector<ParamSlot> slots{{50, "f32"}, {1000, "f32"}, {50, "f32"}};
  const auto buckets = plan_buckets(slots, {0, 1, 2}, BucketCaps{100, 100, 100});
  REQUIRE(buckets == std::vector<std::vector<size_t>>{{0}, {1}, {2}});
}

TEST_CASE("A bucket never mixes dtypes or devices", "[dist]") {
  const std::vector<ParamSlot> slots{{10, "f32"}, {10, "f64"}, {10, "f64"}, {10, "f32"}};
  const auto buckets = plan_buckets(slots, {0, 1, 2, 3}, BucketCaps{1000, 1000, 1000});
  REQUIRE(buckets == std::vector<std::vector<size_t>>{{0}, {1, 2}, {3}});
  REQUIRE(plan_buckets(slots, {3, 1, 2, 0}, BucketCaps{1000, 1000, 1000}) ==
          std::vector<std::vector<size_t>>{{3}, {1, 2}, {0}});
}

TEST_CASE("Bucket planning rejects bad caps and orders", "[dist]") {
  const std::vector<ParamSlot> slots(2, ParamSlot{10, "f32"});
  REQUIRE_THROWS_AS(plan_buckets(slots, {0, 1}, BucketCaps{0, 10, 10}), dpunet::Error);
  REQUIRE_THROWS_WITH(plan_buckets(slots, {0, 1}, BucketCaps{10, 10, 0}), HasSubstr("and last 0 bytes"));
  REQUIRE_THROWS_WITH(plan_buckets(slots, {0, 5}, BucketCaps{}), HasSubstr("parameter 5 of 2"));
  REQUIRE_THROWS_WITH(plan_buckets(slots, {0}, BucketCaps{}), HasSubstr("order names 1"));
  // Outside the last bucket too, and each parameter once.
  const std::vector<ParamSlot> three(3, ParamSlot{10, "f32"});
  REQUIRE_THROWS_WITH(plan_buckets(three, {5, 1, 0}, BucketCaps{10, 10, 10}), HasSubstr("parameter 5 of 3"));
  REQUIRE_THROWS_WITH(plan_buckets(three, {1, 1, 0}, BucketCaps{10, 10, 10}), HasSubstr("parameter 1 twice"));
}
