// Loader: batches in sampler order whatever the thread count, epochs that roll over,
// exact continuation from a saved state, and worker errors that reach the train loop.
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>
#include <set>

#include "data/loader.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"

using dpunet::data::Dataset;
using dpunet::data::DistributedSampler;
using dpunet::data::Loader;
using dpunet::data::LoaderOptions;

namespace {

std::shared_ptr<const Dataset> small_dataset(const dpunet::test::TempDir& dir, int64_t samples = 10) {
  dpunet::test::write_known_shard(dir / "a.h5", samples / 2, 0, 1, 16);
  dpunet::test::write_known_shard(dir / "b.h5", samples - samples / 2, samples / 2, 1, 16);
  return std::make_shared<const Dataset>(dir.path());
}

// A sampler handing out whole batches of `batch`, as the trainer builds it.
DistributedSampler sampler_for(int64_t size, int rank, int world, int64_t batch,
                               dpunet::data::SamplerOptions options = {}) {
  options.batch = batch;
  return DistributedSampler(size, rank, world, options);
}

LoaderOptions augmenting(int workers) {
  LoaderOptions o;
  o.batch_size = 3;
  o.workers = workers;
  o.seed = 11;
  o.augmentation.patch_height = o.augmentation.patch_width = 12;
  o.augmentation.affine_probability = 0.5;
  o.augmentation.noise_probability = 0.5;
  return o;
}

}  // namespace

TEST_CASE("batches do not depend on the number of loader threads", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir);
  Loader one(dataset, sampler_for(dataset->size(), 0, 1, 3), augmenting(1));
  Loader four(dataset, sampler_for(dataset->size(), 0, 1, 3), augmenting(4));
  for (int i = 0; i < 7; ++i) {
    const auto a = one.next(), b = four.next();
    REQUIRE(a.indices == b.indices);
    REQUIRE(a.images.sizes() == std::vector<int64_t>{3, 1, 12, 12});
    REQUIRE(a.masks.sizes() == std::vector<int64_t>{3, 12, 12});
    REQUIRE(torch::equal(a.images, b.images));
    REQUIRE(torch::equal(a.masks, b.masks));
  }
}

TEST_CASE("epochs roll over, and the state after a batch says where the run is", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir);  // 10 samples
  LoaderOptions o;
  o.batch_size = 2;
  o.augment = false;
  dpunet::data::SamplerOptions drop;
  drop.remainder = dpunet::data::Remainder::kDrop;
  // 10 samples, global batch 4: two whole batches per rank, the last 2 samples dropped.
  Loader loader(dataset, sampler_for(dataset->size(), 1, 2, 2, drop), o);
  CHECK(loader.batches_per_epoch() == 2);
  const auto first = loader.next();
  CHECK(first.epoch == 0);
  CHECK(loader.state().epoch == 0);
  CHECK(loader.state().position == 4);  // two ranks consumed two samples each
  loader.next();
  CHECK(loader.state().epoch == 1);
  CHECK(loader.state().position == 0);
  CHECK(loader.next().epoch == 1);
}

TEST_CASE("with padding every sample is seen each epoch, in whole batches", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir);  // 10 samples
  LoaderOptions o;
  o.batch_size = 2;
  o.augment = false;
  // Global batch 4 over 10 samples: three batches per rank, the last 2 positions padding.
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 2; ++rank) {
    Loader loader(dataset, sampler_for(dataset->size(), rank, 2, 2), o);
    CHECK(loader.batches_per_epoch() == 3);
    for (int b = 0; b < 3; ++b) {
      const auto batch = loader.next();
      REQUIRE(batch.indices.size() == 2);  // no partial batch
      CHECK(batch.epoch == 0);
      seen.insert(batch.indices.begin(), batch.indices.end());
    }
    CHECK(loader.state().epoch == 1);
  }
  const std::set<int64_t> distinct(seen.begin(), seen.end());
  CHECK(seen.size() == 12);
  CHECK(distinct.size() == 10);
}

TEST_CASE("a padding copy of a sample is augmented anew, not a second identical patch", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 4);
  LoaderOptions o = augmenting(1);
  o.batch_size = 3;
  o.augmentation.affine_probability = 1.0;
  // 4 samples, batch 3 on one rank: the second batch repeats two samples of the first.
  Loader loader(dataset, sampler_for(4, 0, 1, 3), o);
  const auto a = loader.next(), b = loader.next();
  CHECK(b.epoch == 0);
  int repeats = 0;
  for (size_t j = 1; j < 3; ++j) {
    for (size_t i = 0; i < 3; ++i) {
      if (b.indices[j] != a.indices[i]) continue;
      ++repeats;
      CHECK_FALSE(torch::equal(b.images[static_cast<int64_t>(j)], a.images[static_cast<int64_t>(i)]));
    }
  }
  CHECK(repeats == 2);
}

TEST_CASE("a loader started from a saved state continues exactly", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 12);
  const DistributedSampler sampler = sampler_for(dataset->size(), 0, 1, 3);
  Loader straight(dataset, sampler, augmenting(2));
  for (int i = 0; i < 5; ++i) straight.next();  // into the second epoch
  const auto saved = straight.state();
  Loader resumed(dataset, sampler, augmenting(3), saved);
  for (int i = 0; i < 6; ++i) {
    const auto a = straight.next(), b = resumed.next();
    REQUIRE(a.indices == b.indices);
    REQUIRE(a.epoch == b.epoch);
    REQUIRE(torch::equal(a.images, b.images));
  }
}

TEST_CASE("without augmentation the same sample gives the same patch every epoch", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 4);
  LoaderOptions o;
  o.batch_size = 4;
  o.augment = false;
  o.normalization = dpunet::data::Normalization::kNone;
  o.augmentation.patch_height = o.augmentation.patch_width = 8;
  dpunet::data::SamplerOptions ordered;
  ordered.shuffle = false;
  Loader loader(dataset, sampler_for(4, 0, 1, 4, ordered), o);
  const auto a = loader.next(), b = loader.next();
  CHECK(torch::equal(a.images, b.images));
  // Centre crop of a 16x16 sample: pixel (4, 4) of sample 0, scaled to [0, 1].
  CHECK(a.images[0][0][0][0].item<float>() == Approx(dpunet::test::known_pixel(0, 0, 4 * 16 + 4) / 255.0));
}

TEST_CASE("a read error in a worker reaches the train loop with the file and sample", "[data]") {
  dpunet::test::TempDir dir;
  dpunet::test::RawShard spec;
  spec.image_dims = {4, 1, 8, 8};
  spec.mask_dims = {4, 8, 8};
  spec.mask_value = 9;  // every label is out of range
  dpunet::test::write_raw_shard(dir / "bad.h5", spec);
  const auto dataset = std::make_shared<const Dataset>(dir / "bad.h5");
  LoaderOptions o;
  o.batch_size = 2;
  Loader loader(dataset, sampler_for(4, 0, 1, 2), o);
  CHECK_THROWS_WITH(loader.next(), HasSubstr(dir / "bad.h5") && HasSubstr("mask label 9"));
}

TEST_CASE("dropping a remainder larger than the epoch is refused, and the batches must agree", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 6);
  dpunet::data::SamplerOptions drop;
  drop.remainder = dpunet::data::Remainder::kDrop;
  drop.dataset = "data.train shards/*.h5";
  CHECK_THROWS_WITH(sampler_for(6, 0, 2, 4, drop),
                    HasSubstr("data.train shards/*.h5 has 6 samples: not one batch of 4 on each of 2 ranks"));
  CHECK_THROWS_WITH(sampler_for(1, 0, 2, 1, drop), HasSubstr("data.train shards/*.h5 has 1 sample, fewer than the 2"));
  CHECK(sampler_for(6, 0, 2, 4).samples_per_rank() == 4);  // padded up to one batch
  LoaderOptions o;
  o.batch_size = 4;
  CHECK_THROWS_WITH(Loader(dataset, sampler_for(6, 0, 2, 2), o), HasSubstr("sampler makes batches of 2"));
}

TEST_CASE("dataset normalisation uses the statistics it is given, else the shards' own", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 4);
  std::vector<unsigned char> scratch;
  const dpunet::data::Normalizer own(dpunet::data::Normalization::kDataset);
  dpunet::data::Normalizer given = own;
  given.channel_mean = {10.0};
  given.channel_std = {4.0};
  const auto& h = dataset->header();
  const float raw = dpunet::test::known_pixel(1, 0, 5);
  CHECK(dpunet::data::load_sample(*dataset, 1, given, scratch).image[5] == Approx((raw - 10.0) / 4.0));
  CHECK(dpunet::data::load_sample(*dataset, 1, own, scratch).image[5] ==
        Approx((raw - h.channel_mean[0]) / h.channel_std[0]));
  given.pixel_type = "uint8";
  CHECK(dpunet::data::statistics_apply(given, dpunet::data::PixelType::kUInt8));
  CHECK_FALSE(dpunet::data::statistics_apply(given, dpunet::data::PixelType::kUInt16));
  given.pixel_type = "uint16";
  CHECK_THROWS_WITH(dpunet::data::load_sample(*dataset, 1, given, scratch), HasSubstr("uint16") && HasSubstr("uint8"));
  given.pixel_type.clear();
  given.channel_mean = {1.0, 2.0};
  given.channel_std = {1.0, 1.0};
  CHECK_THROWS_WITH(dpunet::data::load_sample(*dataset, 1, given, scratch), HasSubstr("2 channels"));
  // A constant channel (std 0) is centred only: 1e8 x (raw - mean) would reach the model.
  given.channel_mean = {10.0};
  given.channel_std = {0.0};
  CHECK(dpunet::data::load_sample(*dataset, 1, given, scratch).image[5] == Approx(raw - 10.0));
}

TEST_CASE("per-image normalisation standardises each image's channels, and none scales integers to [0, 1]", "[data]") {
  dpunet::test::TempDir dir;
  dpunet::test::write_known_shard(dir / "s.h5", 3, /*first=*/0, /*channels=*/2);
  const dpunet::data::Dataset dataset(dir / "s.h5");
  std::vector<unsigned char> scratch;
  for (int64_t i = 0; i < 3; ++i) {
    const auto per_image = dpunet::data::load_sample(dataset, i, dpunet::data::Normalization::kPerImage, scratch);
    const auto none = dpunet::data::load_sample(dataset, i, dpunet::data::Normalization::kNone, scratch);
    for (int64_t c = 0; c < 2; ++c) {
      INFO("sample " << i << ", channel " << c);
      double sum = 0, squares = 0, raw_sum = 0, raw_squares = 0;
      for (int64_t p = 0; p < 64; ++p) {
        const double v = per_image.image[c * 64 + p], raw = dpunet::test::known_pixel(i, c, p);
        sum += v, squares += v * v, raw_sum += raw, raw_squares += raw * raw;
        CHECK(none.image[c * 64 + p] == Approx(raw / 255.0));
      }
      CHECK(sum / 64 == Approx(0).margin(1e-5));
      CHECK(squares / 64 == Approx(1).epsilon(1e-4));
      // The same order as the raw values: (raw - mean) / std of this image's channel.
      const double mean = raw_sum / 64, std = std::sqrt(raw_squares / 64 - mean * mean);
      CHECK(per_image.image[c * 64 + 9] == Approx((dpunet::test::known_pixel(i, c, 9) - mean) / std).epsilon(1e-4));
    }
  }
}

TEST_CASE("a loader resumed on another world size goes on with the samples not yet seen", "[data]") {
  dpunet::test::TempDir dir;
  const auto dataset = small_dataset(dir, 12);
  LoaderOptions o;
  o.batch_size = 1;
  o.augment = false;
  // Three ranks took one batch each: 3 of the epoch's 12 samples. Two ranks go on.
  const dpunet::data::SamplerState state{0, 3};
  const auto order = DistributedSampler(12, 0, 3).epoch_order(0);
  std::multiset<int64_t> seen(order.begin(), order.begin() + 3);
  std::vector<dpunet::data::SamplerState> after;
  for (int rank = 0; rank < 2; ++rank) {
    Loader loader(dataset, sampler_for(12, rank, 2, 1), o, state);
    for (int b = 0; b < 5; ++b) {  // 9 samples are left: 5 each, the last one padding
      const auto batch = loader.next();
      seen.insert(batch.indices.begin(), batch.indices.end());
      if (b == 0) after.push_back(batch.state_after);
    }
    CHECK(loader.state().epoch == 1);  // the resumed epoch is done
  }
  // Every sample once, and the first of the order again as padding.
  std::multiset<int64_t> expected(order.begin(), order.end());
  expected.insert(order[0]);
  CHECK(seen == expected);
  CHECK(after[0].position == 5);  // 3 before, then one batch on each of two ranks
}
