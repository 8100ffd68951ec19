// Augmentation: exact geometry for crops, pads, flips and rotations; the warp reduces to
// the crop when it has nothing to do; image and mask move together; results depend on
// the seed only.
#include <torch/torch.h>
#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "data/augment.h"
#include "data/image_filters.h"

using dpunet::data::AugmentOptions;
using dpunet::data::Rng;
using dpunet::data::Sample;

namespace {

// Image pixel (y, x) of channel c holds 10000c + 100y + x; the mask is (y + x) % 3.
Sample coordinates(int64_t h, int64_t w, int64_t channels = 2) {
  Sample s;
  s.index = 5;
  s.channels = channels;
  s.height = h;
  s.width = w;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) s.image.push_back(static_cast<float>(10000 * c + 100 * y + x));
    }
  }
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) s.mask.push_back(static_cast<uint8_t>((y + x) % 3));
  }
  return s;
}

AugmentOptions nothing() {
  AugmentOptions o;
  o.flip_probability = o.rotate90_probability = 0;
  return o;
}

// The (y, x) source coordinate a coordinates() pixel value encodes.
std::pair<int64_t, int64_t> source_of(float value) {
  const auto v = static_cast<int64_t>(std::lround(value)) % 10000;
  return {v / 100, v % 100};
}

}  // namespace

TEST_CASE("without transforms augmentation returns the sample", "[data]") {
  const Sample in = coordinates(6, 7);
  Rng rng(1);
  const Sample out = dpunet::data::augment(in, nothing(), rng);
  CHECK(out.image == in.image);
  CHECK(out.mask == in.mask);
}

TEST_CASE("a crop is a window of the sample, and image and mask move together", "[data]") {
  const Sample in = coordinates(20, 30);
  AugmentOptions o;  // flips and quarter turns on
  o.patch_height = o.patch_width = 8;
  o.flip_probability = 0.5;
  o.rotate90_probability = 0.5;
  std::set<std::pair<int64_t, int64_t>> corners;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Rng rng(seed);
    const Sample out = dpunet::data::augment(in, o, rng);
    REQUIRE(out.height == 8);
    REQUIRE(out.width == 8);
    int64_t min_y = 99, min_x = 99, max_y = -1, max_x = -1;
    for (int64_t p = 0; p < 64; ++p) {
      const auto [y, x] = source_of(out.image[p]);
      REQUIRE(out.image[64 + p] == out.image[p] + 10000);  // channels move together
      REQUIRE(out.mask[p] == (y + x) % 3);                 // the mask follows the image exactly
      min_y = std::min(min_y, y), min_x = std::min(min_x, x), max_y = std::max(max_y, y), max_x = std::max(max_x, x);
    }
    REQUIRE(max_y - min_y == 7);  // an 8x8 window, whatever the orientation
    REQUIRE(max_x - min_x == 7);
    corners.insert({min_y, min_x});
  }
  CHECK(corners.size() > 10);  // the window moves
}

TEST_CASE("flips and quarter turns are the eight symmetries of the square", "[data]") {
  const Sample in = coordinates(4, 4, 1);
  AugmentOptions o = nothing();
  o.flip_probability = 0.5;
  o.rotate90_probability = 0.5;
  std::set<std::vector<float>> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed);
    const Sample out = dpunet::data::augment(in, o, rng);
    // A symmetry keeps neighbours adjacent: corners stay corners.
    const auto [y0, x0] = source_of(out.image[0]);
    REQUIRE(((y0 == 0 || y0 == 3) && (x0 == 0 || x0 == 3)));
    seen.insert(out.image);
  }
  CHECK(seen.size() == 8);
}

// With valid padding only a patch's centre is trained: the crop must let that centre,
// not the whole patch, reach the sample's edges (the context beyond them is mirrored).
TEST_CASE("with a context margin the trained centre of the patch reaches every source pixel", "[data]") {
  const int64_t size = 30, patch = 16, margin = 4;
  const Sample in = coordinates(size, size, 1);
  AugmentOptions o = nothing();
  o.patch_height = o.patch_width = patch;
  o.context_margin = margin;
  std::set<int64_t> rows, cols;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    Rng rng(seed);
    const Sample out = dpunet::data::augment(in, o, rng);
    REQUIRE(out.height == patch);
    // The trained centre lies inside the sample; only the context around it is mirrored.
    const auto [first_y, first_x] = source_of(out.image[margin * patch + margin]);
    const auto [last_y, last_x] = source_of(out.image[(patch - margin) * patch - margin - 1]);
    CHECK(last_y - first_y == patch - 2 * margin - 1);
    CHECK(last_x - first_x == patch - 2 * margin - 1);
    for (int64_t y = margin; y < patch - margin; ++y) {
      for (int64_t x = margin; x < patch - margin; ++x) {
        const auto [sy, sx] = source_of(out.image[y * patch + x]);
        rows.insert(sy);
        cols.insert(sx);
      }
    }
  }
  CHECK(rows.size() == static_cast<size_t>(size));
  CHECK(cols.size() == static_cast<size_t>(size));
  CHECK(*rows.begin() == 0);
  CHECK(*rows.rbegin() == size - 1);
}

namespace {
// A background sample with a 6x6 block of class 1 at (5, 5) and a 2x2 block of class 2
// at (60, 70) (one pixel could fall between the samples of a shrinking warp); mask value
// 255 (unlabelled) in rows 80-99.
Sample sparse_foreground() {
  Sample s = coordinates(100, 100, 1);
  std::fill(s.mask.begin(), s.mask.end(), 0);
  for (int64_t y = 5; y < 11; ++y) {
    for (int64_t x = 5; x < 11; ++x) s.mask[y * 100 + x] = 1;
  }
  for (int64_t y = 60; y < 62; ++y) {
    for (int64_t x = 70; x < 72; ++x) s.mask[y * 100 + x] = 2;
  }
  std::fill(s.mask.begin() + 80 * 100, s.mask.end(), 255);
  return s;
}

// Which mask values the trained window (the patch less `margin` per side) holds.
std::set<int> window_values(const Sample& out, int64_t margin) {
  std::set<int> values;
  for (int64_t y = margin; y < out.height - margin; ++y) {
    for (int64_t x = margin; x < out.width - margin; ++x) values.insert(out.mask[y * out.width + x]);
  }
  return values;
}
}  // namespace

TEST_CASE("foreground oversampling puts a foreground class, each as often, in the trained window", "[data]") {
  const Sample in = sparse_foreground();
  AugmentOptions o;  // flips and quarter turns on
  o.patch_height = o.patch_width = 40;
  o.context_margin = 8;
  o.classes = 3;
  SECTION("crops") {}
  SECTION("with rotation and scaling") {
    o.affine_probability = 1;
    o.max_rotation_degrees = 15;
    o.scale_min = 0.85;
    o.scale_max = 1.25;
  }
  const auto count_windows = [&](double probability) {
    o.foreground_probability = probability;
    int with_foreground = 0, with_class2 = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
      Rng rng(seed);
      const std::set<int> values = window_values(dpunet::data::augment(in, o, rng), o.context_margin);
      with_foreground += values.count(1) > 0 || values.count(2) > 0 ? 1 : 0;
      with_class2 += values.count(2);
    }
    return std::pair<int, int>{with_foreground, with_class2};
  };
  const auto [always, class2] = count_windows(1.0);
  CHECK(always == 300);
  // The 4 pixels of class 2 are drawn as often as the 36 of class 1.
  CHECK(class2 > 100);
  CHECK(class2 < 200);
  const auto [sometimes, unused] = count_windows(0.33);
  const auto [never, unused_too] = count_windows(0.0);
  CHECK(sometimes > never + 60);  // about a third of 300 more
  CHECK(never < 150);
}

TEST_CASE("an oversampled crop holds its foreground pixel in the trained window's central half", "[data]") {
  // One foreground pixel, in the middle and near a corner; crops only, so the image's
  // coordinate values say where each output pixel came from.
  const int64_t patch = 40, margin = 8, window = patch - 2 * margin;
  for (const auto& [fy, fx] : {std::pair<int64_t, int64_t>{60, 70}, {2, 97}}) {
    Sample in = coordinates(100, 100, 1);
    std::fill(in.mask.begin(), in.mask.end(), 0);
    in.mask[fy * 100 + fx] = 1;
    AugmentOptions o;  // flips and quarter turns on
    o.patch_height = o.patch_width = patch;
    o.context_margin = margin;
    o.classes = 2;
    o.foreground_probability = 1;
    for (uint64_t seed = 0; seed < 100; ++seed) {
      Rng rng(seed);
      const Sample out = dpunet::data::augment(in, o, rng);
      // Where it is in the trained window (the mirrored context may repeat it outside).
      int64_t at = -1;
      for (int64_t y = margin; y < patch - margin; ++y) {
        for (int64_t x = margin; x < patch - margin; ++x) {
          if (source_of(out.image[y * patch + x]) == std::pair<int64_t, int64_t>{fy, fx}) at = y * patch + x;
        }
      }
      INFO("anchor (" << fy << ", " << fx << "), seed " << seed << ", output pixel " << at);
      REQUIRE(at >= 0);
      CHECK(out.mask[at] == 1);
      // Its place in the trained window, per axis; the window may not pass the image's
      // edge, so near one the pixel sits as central as that allows.
      for (const auto& [place, source] : {std::pair<int64_t, int64_t>{at / patch - margin, fy},
                                          std::pair<int64_t, int64_t>{at % patch - margin, fx}}) {
        const int64_t low = std::min(source, std::min(99 - source, window / 4));
        CHECK(place >= low);
        CHECK(place < window - low);
      }
    }
  }
}

TEST_CASE("with sparse labels every trained window holds labelled pixels", "[data]") {
  // Labelled (class 0 or 1) only in a 10x10 block at the top left; the rest unlabelled.
  Sample in = coordinates(100, 100, 1);
  for (int64_t p = 0; p < 100 * 100; ++p) in.mask[p] = p / 100 < 10 && p % 100 < 10 ? (p % 2) : 255;
  AugmentOptions o;
  o.patch_height = o.patch_width = 40;
  o.context_margin = 8;
  o.classes = 2;
  const auto windows_with_labels = [&](bool sparse) {
    o.sparse_labels = sparse;
    int with = 0;
    for (uint64_t seed = 0; seed < 100; ++seed) {
      Rng rng(seed);
      const std::set<int> values = window_values(dpunet::data::augment(in, o, rng), o.context_margin);
      with += values.count(0) + values.count(1) > 0 ? 1 : 0;
    }
    return with;
  };
  CHECK(windows_with_labels(true) == 100);
  CHECK(windows_with_labels(false) < 50);
  // A sample labelled everywhere is placed exactly as without the option.
  const Sample labelled = coordinates(100, 100, 1);  // mask values 0-2
  o.classes = 3;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng with(seed), without(seed);
    o.sparse_labels = true;
    const Sample a = dpunet::data::augment(labelled, o, with);
    o.sparse_labels = false;
    CHECK(a.image == dpunet::data::augment(labelled, o, without).image);
  }
}

TEST_CASE("foreground oversampling of a sample without foreground places the patch anywhere", "[data]") {
  Sample in = sparse_foreground();
  std::replace(in.mask.begin(), in.mask.end(), uint8_t{1}, uint8_t{0});
  std::replace(in.mask.begin(), in.mask.end(), uint8_t{2}, uint8_t{0});
  AugmentOptions o = nothing();
  o.patch_height = o.patch_width = 40;
  o.foreground_probability = 1;
  o.classes = 2;  // the unlabelled value 255 is no class
  int with_unlabelled = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Rng rng(seed);
    with_unlabelled += window_values(dpunet::data::augment(in, o, rng), 0).count(255);
  }
  CHECK(with_unlabelled > 0);
  CHECK(with_unlabelled < 100);
  o.classes = 0;
  CHECK_THROWS_WITH(o.validate(), HasSubstr("foreground oversampling and sparse labels need the class count"));
}

TEST_CASE("a sample smaller than the patch is mirror-padded", "[data]") {
  const Sample in = coordinates(4, 4, 1);
  const Sample out = dpunet::data::centre_crop(in, 8, 8);
  // Offset -2: row -2 mirrors row 2, row -1 mirrors row 1 (the edge row is not repeated).
  CHECK(out.image[0] == 100 * 2 + 2);
  CHECK(out.image[1 * 8 + 1] == 100 * 1 + 1);
  CHECK(out.image[2 * 8 + 2] == 0);
  CHECK(out.image[7 * 8 + 7] == 100 * 1 + 1);  // source 5 mirrors to 1
}

TEST_CASE("a warp that does nothing reproduces the crop exactly", "[data]") {
  const Sample in = coordinates(16, 16);
  AugmentOptions plain = nothing();
  plain.patch_height = plain.patch_width = 10;
  AugmentOptions warped = plain;
  warped.affine_probability = 1;
  warped.max_rotation_degrees = 0;
  warped.scale_min = warped.scale_max = 1;
  warped.elastic_probability = 1;
  warped.elastic_sigma = 0;
  Rng a(9), b(9);
  const Sample crop = dpunet::data::spatial_augment(in, plain, a);
  const Sample warp = dpunet::data::spatial_augment(in, warped, b);
  CHECK(warp.image == crop.image);
  CHECK(warp.mask == crop.mask);
}

TEST_CASE("rotation, scaling and elastic deformation move image and mask together", "[data]") {
  // A disc: inside label 1 and value 1, outside 0. After warping, the bilinear image and
  // the nearest-neighbour mask agree everywhere except along the rim.
  Sample in;
  in.channels = 1;
  in.height = in.width = 64;
  for (int64_t y = 0; y < 64; ++y) {
    for (int64_t x = 0; x < 64; ++x) {
      const bool inside = (y - 30) * (y - 30) + (x - 34) * (x - 34) < 15 * 15;
      in.image.push_back(inside ? 1.0f : 0.0f);
      in.mask.push_back(inside ? 1 : 0);
    }
  }
  AugmentOptions o;
  o.affine_probability = 1;
  o.max_rotation_degrees = 30;
  o.elastic_probability = 1;
  o.elastic_sigma = 4;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    Rng rng(seed);
    const Sample out = dpunet::data::spatial_augment(in, o, rng);
    int64_t disagree = 0, changed = 0;
    for (size_t p = 0; p < out.mask.size(); ++p) {
      disagree += (out.image[p] >= 0.5f) != (out.mask[p] == 1);
      changed += out.mask[p] != in.mask[p];
    }
    CHECK(disagree <= 40);  // a few rim pixels out of 4096
    CHECK(changed > 0);
  }
}

TEST_CASE("augmentation depends on the seed alone", "[data]") {
  const Sample in = coordinates(32, 32);
  AugmentOptions o;
  o.patch_height = o.patch_width = 24;
  o.affine_probability = o.elastic_probability = 0.5;
  o.brightness_probability = o.contrast_probability = o.gamma_probability = o.noise_probability = 0.5;
  Rng a(42), b(42), c(43);
  const Sample x = dpunet::data::augment(in, o, a);
  const Sample y = dpunet::data::augment(in, o, b);
  const Sample z = dpunet::data::augment(in, o, c);
  CHECK(x.image == y.image);
  CHECK(x.mask == y.mask);
  CHECK(x.image != z.image);
}

TEST_CASE("intensity transforms keep what they promise", "[data]") {
  Sample s = coordinates(8, 8, 1);
  for (float& v : s.image) v = v / 800.0f;  // into about [0, 1]
  const Sample before = s;
  AugmentOptions o = nothing();
  SECTION("brightness scales within its range") {
    o.brightness_probability = 1;
    Rng rng(3);
    dpunet::data::intensity_augment(s, o, rng);
    const float factor = s.image[10] / before.image[10];
    CHECK(factor >= 1 - o.brightness_range);
    CHECK(factor <= 1 + o.brightness_range);
    for (size_t p = 1; p < s.image.size(); ++p) REQUIRE(s.image[p] == Approx(before.image[p] * factor));
  }
  SECTION("brightness and contrast draw a factor per channel") {
    Sample two = coordinates(8, 8, 2);
    for (float& v : two.image) v = v / 800.0f + 0.1f;
    for (const bool brightness : {true, false}) {
      o.brightness_probability = brightness ? 1 : 0;
      o.contrast_probability = brightness ? 0 : 1;
      Sample t = two;
      Rng rng(11);
      dpunet::data::intensity_augment(t, o, rng);
      // The same pixel of both channels held the same value plus the channel's offset.
      const auto change = [&](int64_t c) {
        return (t.image[c * 64 + 9] - t.image[c * 64 + 54]) / (two.image[c * 64 + 9] - two.image[c * 64 + 54]);
      };
      CHECK(change(0) != Approx(change(1)).epsilon(1e-3));
    }
  }
  SECTION("contrast scales around the mean and keeps the range") {
    o.contrast_probability = 1;
    const auto [low, high] = std::minmax_element(before.image.begin(), before.image.end());
    double mean = 0;
    for (float v : before.image) mean += v / static_cast<double>(before.image.size());
    bool clipped = false;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      Sample t = before;
      Rng rng(seed);
      dpunet::data::intensity_augment(t, o, rng);
      // A pixel near the mean is never clipped: it gives the factor.
      size_t probe = 0;
      for (size_t p = 0; p < t.image.size(); ++p) {
        if (std::abs(before.image[p] - mean) > 0.05 && std::abs(before.image[p] - mean) < 0.2) probe = p;
      }
      const double factor = (t.image[probe] - mean) / (before.image[probe] - mean);
      REQUIRE(factor >= 1 - o.contrast_range - 1e-4);
      REQUIRE(factor <= 1 + o.contrast_range + 1e-4);
      for (size_t p = 0; p < t.image.size(); ++p) {
        const double scaled = (before.image[p] - mean) * factor + mean;
        REQUIRE(t.image[p] == Approx(std::clamp<double>(scaled, *low, *high)).margin(1e-5));
        clipped = clipped || scaled > *high + 1e-4 || scaled < *low - 1e-4;
      }
    }
    CHECK(clipped);  // some factor above 1 met the range
  }
  SECTION("gamma keeps the mean and standard deviation, plain and inverted") {
    const auto stats = [](const std::vector<float>& v) {
      double sum = 0, squares = 0;
      for (float x : v) sum += x;
      const double mean = sum / static_cast<double>(v.size());
      for (float x : v) squares += (x - mean) * (x - mean);
      return std::make_pair(mean, std::sqrt(squares / static_cast<double>(v.size())));
    };
    Sample outlier = before;
    outlier.image[5] = 40.0f;  // one bright pixel must not shift the level of the rest
    for (const bool inverted : {false, true}) {
      o.gamma_probability = inverted ? 0 : 1;
      o.gamma_invert_probability = inverted ? 1 : 0;
      for (uint64_t seed = 0; seed < 6; ++seed) {
        Sample t = outlier;
        Rng rng(seed);
        dpunet::data::intensity_augment(t, o, rng);
        const auto [mean, std] = stats(outlier.image);
        const auto [new_mean, new_std] = stats(t.image);
        CHECK(new_mean == Approx(mean).margin(1e-4));
        CHECK(new_std == Approx(std).epsilon(1e-4));
        CHECK(t.image != outlier.image);
      }
    }
  }
  SECTION("gamma stays inside a range on one side of 1") {
    o.gamma_min = 0.5;
    o.gamma_max = 0.8;
    for (const bool inverted : {false, true}) {
      o.gamma_probability = inverted ? 0 : 1;
      o.gamma_invert_probability = inverted ? 1 : 0;
      for (uint64_t seed = 0; seed < 40; ++seed) {
        Sample t = s;
        t.image = {0.0f, 0.5f, 1.0f, 1.0f};
        t.height = 2, t.width = 2;
        t.mask.assign(4, 0);
        Rng rng(seed);
        dpunet::data::intensity_augment(t, o, rng);
        // The curve maps the middle of the range to 0.5^gamma of the way from the end it
        // starts at (0 plain, 1 inverted); restoring mean and std is affine on top of it.
        const double from = inverted ? t.image[2] : t.image[0], to = inverted ? t.image[0] : t.image[2];
        const double gamma = std::log((t.image[1] - from) / (to - from)) / std::log(0.5);
        REQUIRE(gamma >= 0.5 - 1e-4);
        REQUIRE(gamma <= 0.8 + 1e-4);
      }
    }
  }
  SECTION("noise changes pixels, not the mask") {
    o.noise_probability = 1;
    Rng rng(6);
    dpunet::data::intensity_augment(s, o, rng);
    CHECK(s.image != before.image);
    CHECK(s.mask == before.mask);
  }
  SECTION("blur and lower resolution smooth half of the channels, not the mask") {
    Sample two = coordinates(8, 8, 2);
    for (size_t p = 0; p < two.image.size(); ++p) two.image[p] = static_cast<float>(p % 2);  // stripes
    const Sample striped = two;
    const auto first = [](const Sample& t, int64_t c) { return t.image.begin() + c * 64; };
    for (const bool blur : {true, false}) {
      o.blur_probability = blur ? 1 : 0;
      o.low_resolution_probability = blur ? 0 : 1;
      int changed = 0, kept = 0, different = 0;
      for (uint64_t seed = 0; seed < 40; ++seed) {
        Sample t = striped;
        Rng rng(seed);
        dpunet::data::intensity_augment(t, o, rng);
        REQUIRE(t.mask == striped.mask);
        bool both = true;
        for (int64_t c = 0; c < 2; ++c) {
          const bool same = std::equal(first(t, c), first(t, c + 1), first(striped, c));
          (same ? kept : changed) += 1;
          both = both && !same;
          if (!blur || same) continue;
          // Stripes one pixel wide lose most of their contrast under any sigma of the range.
          const auto [low, high] = std::minmax_element(first(t, c), first(t, c + 1));
          REQUIRE(*high - *low < 0.8f);
        }
        // The two channels held the same stripes; each drew its own amount.
        if (blur && both && !std::equal(first(t, 0), first(t, 1), first(t, 1))) ++different;
      }
      // nnU-Net's 1/2 per channel: 80 channel draws, each way well over 20 times.
      CHECK(changed > 20);
      CHECK(kept > 20);
      if (blur) CHECK(different > 0);
    }
  }
}

TEST_CASE("Gaussian blur equals a convolution with mirrored borders", "[data]") {
  const torch::Tensor image = torch::rand({13, 17});
  const double sigma = 0.8;
  torch::Tensor blurred = image.clone();
  dpunet::data::gaussian_blur(blurred.data_ptr<float>(), 13, 17, sigma);
  const int64_t radius = 3;  // 4 sigma, rounded
  const torch::Tensor offsets = torch::arange(-radius, radius + 1, torch::kDouble);
  torch::Tensor kernel = torch::exp(-0.5 * offsets * offsets / (sigma * sigma));
  kernel = (kernel / kernel.sum()).to(torch::kFloat);
  const torch::Tensor padded = torch::reflection_pad2d(image.view({1, 1, 13, 17}), {radius, radius, radius, radius});
  const torch::Tensor expected =
      torch::conv2d(torch::conv2d(padded, kernel.view({1, 1, 1, -1})), kernel.view({1, 1, -1, 1})).view({13, 17});
  CHECK(torch::allclose(blurred, expected, 1e-5, 1e-6));
  torch::Tensor constant = torch::full({5, 4}, 2.5f);
  dpunet::data::gaussian_blur(constant.data_ptr<float>(), 5, 4, 1.0);  // radius 4 > the image: mirrored again
  CHECK(torch::allclose(constant, torch::full({5, 4}, 2.5f)));
}

TEST_CASE("lower resolution keeps what a coarser camera would see and loses the rest", "[data]") {
  torch::Tensor image = torch::rand({10, 12});
  const torch::Tensor original = image.clone();
  dpunet::data::simulate_low_resolution(image.data_ptr<float>(), 10, 12, 1.0);
  CHECK(torch::equal(image, original));  // full resolution: unchanged
  torch::Tensor constant = torch::full({9, 7}, -1.5f);
  dpunet::data::simulate_low_resolution(constant.data_ptr<float>(), 9, 7, 0.6);
  CHECK(torch::allclose(constant, torch::full({9, 7}, -1.5f)));
  // A one-pixel checkerboard at half resolution: every kept sample is of one colour.
  torch::Tensor checkers =
      (torch::arange(8).view({8, 1}) + torch::arange(8).view({1, 8})).remainder(2).to(torch::kFloat);
  dpunet::data::simulate_low_resolution(checkers.data_ptr<float>(), 8, 8, 0.5);
  CHECK(torch::allclose(checkers, torch::zeros({8, 8})));
  // A 2x2-block pattern at half resolution: the kept samples are the blocks' values, and
  // cubic interpolation between them overshoots them only a little.
  torch::Tensor blocks = torch::rand({4, 4}).repeat_interleave(2, 0).repeat_interleave(2, 1).contiguous();
  const torch::Tensor coarse = blocks
                                   .index({torch::indexing::Slice(1, torch::indexing::None, 2),
                                           torch::indexing::Slice(1, torch::indexing::None, 2)})
                                   .clone();
  dpunet::data::simulate_low_resolution(blocks.data_ptr<float>(), 8, 8, 0.5);
  CHECK(blocks.min().item<float>() >= coarse.min().item<float>() - 0.2f);
  CHECK(blocks.max().item<float>() <= coarse.max().item<float>() + 0.2f);
}

TEST_CASE("out-of-range augmentation options are rejected by name", "[data]") {
  AugmentOptions o;
  o.elastic_probability = 1.5;
  CHECK_THROWS_WITH(o.validate(), HasSubstr("elastic probability"));
  o = AugmentOptions{};
  o.scale_min = 2;
  o.scale_max = 1;
  CHECK_THROWS_WITH(o.validate(), HasSubstr("scale_min"));
  o = AugmentOptions{};
  o.blur_sigma_min = 0;
  CHECK_THROWS_WITH(o.validate(), HasSubstr("blur_sigma_min"));
  o = AugmentOptions{};
  o.low_resolution_min = 1.5;
  CHECK_THROWS_WITH(o.validate(), HasSubstr("low_resolution_min"));
}
