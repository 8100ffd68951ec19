// Training setup helpers: NHWC weights; the model the config describes.
#include <torch/torch.h>
#include "support/catch.h"

#include "config/config.h"
#include "model/unet.h"
#include "train/setup.h"

TEST_CASE("the config's model keys reach the U-Net's options", "[train]") {
  const auto config = dpunet::config::parse_config(
      "model:\n  base_channels: 8\n  depth: 2\n  padding: valid\n  fuse_norm_relu: false\n  pool_concat_kernels: "
      "false\n",
      "m.yaml");
  const dpunet::model::UnetOptions o = dpunet::train::unet_options(config, nullptr);
  CHECK(o.base_channels == 8);
  CHECK(o.depth == 2);
  CHECK(o.padding == dpunet::model::Padding::kValid);
  CHECK_FALSE(o.fuse_norm_relu);
  CHECK_FALSE(o.pool_concat_kernels);
  const dpunet::model::UnetOptions defaults =
      dpunet::train::unet_options(dpunet::config::parse_config("", "d.yaml"), nullptr);
  CHECK(defaults.fuse_norm_relu);
  CHECK(defaults.pool_concat_kernels);
}

TEST_CASE("use_channels_last_weights gives every 4-D weight NHWC strides, one-input-channel ones too", "[train]") {
  torch::manual_seed(0);
  dpunet::model::UnetOptions o;
  o.n_channels = 1;
  o.n_classes = 3;
  o.base_channels = 8;
  o.depth = 2;
  dpunet::model::Unet net(o);
  std::vector<torch::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().clone());

  dpunet::train::use_channels_last_weights(*net);

  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& p = params[i];
    CHECK(torch::equal(p, before[i]));
    if (p.dim() != 4) continue;
    INFO("weight " << p.sizes());
    CHECK(p.stride(1) == 1);  // channels innermost, even when there is one channel
    CHECK(p.stride(3) == p.size(1));
  }
  // The first convolution (one input channel) hands an NHWC map to the layers after it.
  torch::NoGradGuard no_grad;
  const torch::Tensor image = torch::randn({2, 1, 16, 16});
  const torch::Tensor first = torch::conv2d(image, params[0], {}, 1, 1);
  CHECK(first.is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK_FALSE(first.is_contiguous());
}

TEST_CASE("whole-image training refuses images too small for the model's depth before it starts", "[train]") {
  const auto config = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=0", "model.depth=6"});
  dpunet::data::ShardHeader header;
  header.channels = config.model.n_channels;
  header.n_classes = config.model.n_classes;
  header.height = 64;
  header.width = 32;
  CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(config, header, "data.train x.h5"),
                    HasSubstr("data.train x.h5: augment.patch_size is 0") && HasSubstr("image side of 32") &&
                        HasSubstr("nearest valid sizes: 64"));
  header.width = 64;
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(config, header, "data.train x.h5"));
}
