// Unet output shapes for any input size, valid padding arithmetic, and input errors.
#include "support/catch.h"

#include <torch/torch.h>

#include "common/error.h"
#include "model/unet.h"

using dpunet::model::Padding;
using dpunet::model::Unet;
using dpunet::model::UnetOptions;

namespace {
UnetOptions small(int64_t n_channels, int64_t n_classes) {
  UnetOptions o;
  o.n_channels = n_channels;
  o.n_classes = n_classes;
  o.base_channels = 8;
  return o;
}
}  // namespace

TEST_CASE("Unet maps a [1,1,572,572] input to [1,2,572,572] (the reference example)", "[model]") {
  torch::manual_seed(0);
  Unet net(/*n_channels=*/1, /*n_classes=*/2);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto y = net->forward(torch::randn({1, 1, 572, 572}));
  CHECK(y.sizes() == torch::IntArrayRef({1, 2, 572, 572}));
  CHECK(torch::isfinite(y).all().item<bool>());
}

TEST_CASE("Unet keeps odd and non-square sizes, transposed and bilinear", "[model]") {
  for (bool bilinear : {false, true}) {
    auto o = small(3, 5);
    o.bilinear = bilinear;
    Unet net(o);
    for (auto [h, w] : {std::pair<int64_t, int64_t>{37, 45}, {16, 16}, {65, 100}}) {
      INFO("bilinear=" << bilinear << " " << h << "x" << w);
      CHECK(net->forward(torch::randn({2, 3, h, w})).sizes() == torch::IntArrayRef({2, 5, h, w}));
    }
  }
}

TEST_CASE("Unet with valid padding maps 572 to 388 as in the 2015 paper", "[model]") {
  auto o = small(1, 2);
  o.padding = Padding::kValid;
  CHECK(dpunet::model::output_size(o, 572) == 388);
  CHECK(dpunet::model::output_size(o, 188) == 4);
  CHECK_FALSE(dpunet::model::output_size(o, 570));
  // The paper's bottom: 32 -> 30 -> 28 after its two convolutions.
  CHECK(dpunet::model::bottom_size(o, 572) == 28);
  CHECK_FALSE(dpunet::model::bottom_size(o, 570));
  o.padding = Padding::kSame;
  CHECK(dpunet::model::bottom_size(o, 572) == 35);  // pooling floors 143 and 71
  o.padding = Padding::kValid;
  Unet net(o);
  torch::NoGradGuard no_grad;
  CHECK(net->forward(torch::randn({1, 1, 572, 572})).sizes() == torch::IntArrayRef({1, 2, 388, 388}));
}

TEST_CASE("the context margin is half of what valid padding takes off, at every depth and size", "[model]") {
  dpunet::model::UnetOptions o;
  o.padding = dpunet::model::Padding::kValid;
  CHECK(dpunet::model::context_margin(o) == 92);  // 572 -> 388
  for (int64_t depth = 1; depth <= 6; ++depth) {
    o.depth = depth;
    int found = 0;
    for (int64_t size = 1; size < 1200 && found < 4; ++size) {
      const auto output = dpunet::model::output_size(o, size);
      if (!output) continue;
      ++found;
      INFO("depth " << depth << ", input " << size);
      CHECK(size - *output == 2 * dpunet::model::context_margin(o));
    }
    CHECK(found == 4);
  }
  o.padding = dpunet::model::Padding::kSame;
  CHECK(dpunet::model::context_margin(o) == 0);
}

TEST_CASE("the bottom map's norm problems are said for BatchNorm in training and Instance- or GroupNorm always",
          "[model]") {
  using dpunet::model::bottom_norm_problem;
  using dpunet::model::Norm;
  auto o = small(1, 2);
  o.depth = 5;
  // 32 px: a 1x1 bottom map. BatchNorm needs two values per channel over the batch.
  CHECK(bottom_norm_problem(o, 32, 32, 1) ==
        "the depth-5 U-Net's bottom map is 1x1, which leaves BatchNorm one value per channel to normalise in a "
        "batch of 1");
  CHECK(bottom_norm_problem(o, 32, 32, 2).empty());
  CHECK(bottom_norm_problem(o, 32, 64, 1).empty());  // 1x2
  CHECK(bottom_norm_problem(o, 32, 32, 0).empty());  // inference: running statistics
  o.norm = Norm::kInstance;
  for (const int64_t batch : {0, 1, 8}) {
    CHECK(bottom_norm_problem(o, 32, 32, batch) ==
          "the depth-5 U-Net's bottom map is 1x1, which InstanceNorm would zero whatever it held");
  }
  CHECK(bottom_norm_problem(o, 64, 32, 1).empty());
  o.norm = Norm::kGroup;
  CHECK(bottom_norm_problem(o, 32, 32, 1).empty());  // 256 channels, 8 in each of 32 groups
  o.base_channels = 1;                               // 32 channels at the bottom: one per group
  CHECK(bottom_norm_problem(o, 32, 32, 4) ==
        "the depth-5 U-Net's bottom map is 1x1 with one channel in each of GroupNorm's 32 groups, which it would "
        "zero whatever it held");
  CHECK(bottom_norm_problem(o, 32, 64, 4).empty());
  o.base_channels = 2;
  o.bilinear = true;  // 64 halved by the bilinear decoder's bottom: one channel per group again
  CHECK(!bottom_norm_problem(o, 32, 32, 0).empty());
  o.bilinear = false;
  CHECK(bottom_norm_problem(o, 32, 32, 0).empty());
  o.base_channels = 8;
  // Valid padding: 572 leaves 28x28 at depth 4; a size it cannot tile says nothing here.
  o.padding = Padding::kValid;
  o.depth = 4;
  o.norm = Norm::kInstance;
  CHECK(bottom_norm_problem(o, 572, 572, 1).empty());
  CHECK(bottom_norm_problem(o, 570, 570, 1).empty());
}

TEST_CASE("Unet with valid padding names the nearest valid sizes for an untileable input", "[model]") {
  auto o = small(1, 2);
  o.padding = Padding::kValid;
  CHECK(dpunet::model::nearest_valid_sizes(o, 570) == std::vector<int64_t>{556, 572});
  CHECK(dpunet::model::nearest_valid_sizes(o, 20) == std::vector<int64_t>{188});
  Unet net(o);
  CHECK_THROWS_WITH(net->forward(torch::randn({1, 1, 570, 572})),
                    HasSubstr("cannot tile input size 570") && HasSubstr("556 or 572"));
}

TEST_CASE("Unet rejects inputs of the wrong rank, channel count or size", "[model]") {
  Unet net(small(3, 2));
  CHECK_THROWS_WITH(net->forward(torch::randn({3, 64, 64})),
                    HasSubstr("expects input [N, C=3, H, W], got [3, 64, 64]"));
  CHECK_THROWS_WITH(net->forward(torch::randn({1, 1, 64, 64})),
                    HasSubstr("expects 3 input channel(s)") && HasSubstr("[1, 1, 64, 64]"));
  CHECK_THROWS_WITH(net->forward(torch::randn({1, 3, 8, 64})), HasSubstr("H and W >= 16"));
  CHECK_THROWS_AS(net->forward(torch::Tensor()), dpunet::Error);
  // Pixels as read (integers) and an empty batch: said by the model, not by a layer.
  CHECK_THROWS_WITH(net->forward(torch::zeros({1, 3, 64, 64}, torch::kByte)),
                    HasSubstr("Unet expects floating-point input") && HasSubstr("Byte"));
  CHECK_THROWS_WITH(net->forward(torch::randn({0, 3, 64, 64})),
                    HasSubstr("Unet expects at least one sample, got input [0, 3, 64, 64]"));
}
