// Synthetic data: deterministic per seed, with every class present.
#include "support/catch.h"

#include "data/dataset.h"
#include "data/synth.h"
#include "support/temp_dir.h"

TEST_CASE("synthetic samples depend on seed and index only, and show every class", "[data]") {
  dpunet::data::SynthOptions o;
  o.height = o.width = 96;
  std::vector<float> a, b, c;
  std::vector<uint8_t> ma, mb, mc;
  dpunet::data::render_synthetic_sample(o, 3, a, ma);
  dpunet::data::render_synthetic_sample(o, 3, b, mb);
  dpunet::data::render_synthetic_sample(o, 4, c, mc);
  CHECK(a == b);
  CHECK(ma == mb);
  CHECK(a != c);
  dpunet::data::SynthOptions reseeded = o;
  reseeded.seed = o.seed + 1;
  std::vector<float> d;
  std::vector<uint8_t> md;
  dpunet::data::render_synthetic_sample(reseeded, 3, d, md);
  CHECK(a != d);
  std::vector<int> counts(3, 0);
  for (uint8_t m : ma) ++counts.at(m);
  for (int n : counts) CHECK(n > 50);
  for (float v : a) REQUIRE((v >= 0.0f && v <= 1.0f));
}

TEST_CASE("a synthetic dataset is written as readable shards", "[data]") {
  dpunet::test::TempDir dir;
  dpunet::data::SynthOptions o;
  o.samples = 7;
  o.shards = 3;
  o.height = o.width = 32;
  o.channels = 2;
  o.pixel_type = dpunet::data::PixelType::kUInt16;
  o.n_classes = 2;
  const auto paths = dpunet::data::write_synthetic_dataset(dir.path(), o);
  CHECK(paths.size() == 3);
  const dpunet::data::Dataset dataset(dir.path());
  CHECK(dataset.size() == 7);
  CHECK(dataset.header().channels == 2);
  CHECK(dataset.header().class_names == std::vector<std::string>{"background", "cell"});
  std::vector<uint16_t> image(2 * 32 * 32);
  std::vector<uint8_t> mask(32 * 32);
  dataset.read(6, image.data(), mask.data());
  std::vector<float> expected;
  std::vector<uint8_t> expected_mask;
  dpunet::data::render_synthetic_sample(o, 6, expected, expected_mask);
  CHECK(mask == expected_mask);
  CHECK(image[100] == static_cast<uint16_t>(std::lround(expected[100] * 65535.0f)));
}
