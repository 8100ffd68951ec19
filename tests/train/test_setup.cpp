// Training setup helpers: NHWC weights; the model the config describes.
#include <torch/torch.h>
#include "support/catch.h"

#include <filesystem>

#include "config/config.h"
#include "data/dataset.h"
#include "data/shard_writer.h"
#include "data/synth.h"
#include "model/unet.h"
#include "support/temp_dir.h"
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

TEST_CASE("model.split_skip_conv chooses the split convolutions, or leaves them to the checkpointing policy",
          "[train]") {
  auto splits = [](const std::string& model_yaml) {
    const auto config =
        dpunet::config::parse_config("model: {base_channels: 8, depth: 2, " + model_yaml + "}\n", "m.yaml");
    return dpunet::train::build_model(config, nullptr)->splits_skip_convolutions();
  };
  CHECK_FALSE(splits("checkpointing: none"));
  CHECK(splits("checkpointing: min_memory"));
  CHECK_FALSE(splits("checkpointing: balanced"));
  CHECK_FALSE(splits("checkpointing: min_memory, split_skip_conv: false"));
  CHECK(splits("checkpointing: none, split_skip_conv: true"));
  CHECK(splits("checkpointing: all, split_skip_conv: true"));
  CHECK_THROWS_WITH(dpunet::config::parse_config("model: {split_skip_conv: yes}\n", "m.yaml"),
                    HasSubstr("model.split_skip_conv") && HasSubstr("auto, true, false; got 'yes'"));
}

TEST_CASE("every loader, loss, sampler and DDP key reaches the options built from it", "[train]") {
  // A value of its own for each key, none a default: a key read into another field, or a
  // field copied from another key, shows.
  const auto c = dpunet::config::parse_config(
      "run: {seed: 77}\n"
      "train: {batch_size: 6}\n"
      "data: {workers: 3, prefetch: 5, remainder: drop, normalization: per_image}\n"
      "augment: {enabled: false, patch_size: 96, flip: 0.11, rotate90: 0.12, affine: 0.13, max_rotation_degrees: 14,\n"
      "  scale_min: 0.81, scale_max: 1.21, elastic: 0.15, elastic_grid: 4, elastic_sigma: 9, brightness: 0.16,\n"
      "  brightness_range: 0.21, contrast: 0.17, contrast_range: 0.22, gamma: 0.18, gamma_invert: 0.19,\n"
      "  gamma_min: 0.71, gamma_max: 1.41, noise: 0.23, noise_std: 0.05, blur: 0.24, blur_sigma_min: 0.55,\n"
      "  blur_sigma_max: 0.95, low_resolution: 0.26, low_resolution_min: 0.6, foreground: 0.27}\n"
      "loss: {ce_weight: 0.5, dice_weight: 2, class_weights: [1, 2, 3], dice_include_background: true}\n"
      "distributed: {first_bucket_mb: 2, bucket_mb: 30, wire_dtype: fp16}\n",
      "all.yaml");
  const dpunet::data::LoaderOptions l = dpunet::train::loader_options(c, /*pin_memory=*/true);
  CHECK(l.batch_size == 6);
  CHECK(l.workers == 3);
  CHECK(l.prefetch_batches == 5);
  CHECK(l.pin_memory);
  CHECK(l.normalization.mode == dpunet::data::Normalization::kPerImage);
  CHECK(l.seed == 77);
  CHECK_FALSE(l.augment);
  const auto& a = l.augmentation;
  CHECK(a.patch_height == 96);
  CHECK(a.patch_width == 96);
  CHECK(a.classes == 3);
  CHECK(a.flip_probability == 0.11);
  CHECK(a.rotate90_probability == 0.12);
  CHECK(a.affine_probability == 0.13);
  CHECK(a.max_rotation_degrees == 14);
  CHECK(a.scale_min == 0.81);
  CHECK(a.scale_max == 1.21);
  CHECK(a.elastic_probability == 0.15);
  CHECK(a.elastic_grid == 4);
  CHECK(a.elastic_sigma == 9);
  CHECK(a.brightness_probability == 0.16);
  CHECK(a.brightness_range == 0.21);
  CHECK(a.contrast_probability == 0.17);
  CHECK(a.contrast_range == 0.22);
  CHECK(a.gamma_probability == 0.18);
  CHECK(a.gamma_invert_probability == 0.19);
  CHECK(a.gamma_min == 0.71);
  CHECK(a.gamma_max == 1.41);
  CHECK(a.noise_probability == 0.23);
  CHECK(a.noise_std == 0.05);
  CHECK(a.blur_probability == 0.24);
  CHECK(a.blur_sigma_min == 0.55);
  CHECK(a.blur_sigma_max == 0.95);
  CHECK(a.low_resolution_probability == 0.26);
  CHECK(a.low_resolution_min == 0.6);
  CHECK(a.foreground_probability == 0.27);

  const dpunet::train::LossOptions loss = dpunet::train::loss_options(c);
  CHECK(loss.ce_weight == 0.5);
  CHECK(loss.dice_weight == 2);
  CHECK(loss.class_weights == std::vector<double>{1, 2, 3});
  CHECK(loss.dice_include_background);

  const dpunet::data::SamplerOptions s = dpunet::train::sampler_options(c);
  CHECK(s.seed == 77);
  CHECK(s.remainder == dpunet::data::Remainder::kDrop);
  CHECK(s.batch == 6);

  const dpunet::dist::DdpOptions d = dpunet::train::ddp_options(c);
  CHECK(d.bucket_caps.first_bytes == 2 * 1024 * 1024);
  CHECK(d.bucket_caps.bytes == 30 * 1024 * 1024);
  CHECK(d.wire_dtype == dpunet::dist::WireDtype::kFloat16);
}

TEST_CASE("the optimizer keys reach the optimizer", "[train]") {
  torch::nn::Linear layer(2, 2);
  const auto adamw = dpunet::config::parse_config(
      "optimizer: {lr: 0.003, weight_decay: 0.02, beta1: 0.8, beta2: 0.95, eps: 1e-6}\n", "a.yaml");
  const auto adam = dpunet::train::build_optimizer(adamw, layer->parameters());
  const auto& a = static_cast<const torch::optim::AdamWOptions&>(adam->param_groups().at(0).options());
  CHECK(a.lr() == 0.003);
  CHECK(a.weight_decay() == 0.02);
  CHECK(std::get<0>(a.betas()) == 0.8);
  CHECK(std::get<1>(a.betas()) == 0.95);
  CHECK(a.eps() == 1e-6);
  const auto sgd_config =
      dpunet::config::parse_config("optimizer: {name: sgd, lr: 0.02, weight_decay: 0.03, momentum: 0.9}\n", "s.yaml");
  const auto sgd = dpunet::train::build_optimizer(sgd_config, layer->parameters());
  const auto& o = static_cast<const torch::optim::SGDOptions&>(sgd->param_groups().at(0).options());
  CHECK(o.lr() == 0.02);
  CHECK(o.weight_decay() == 0.03);
  CHECK(o.momentum() == 0.9);
  CHECK(o.nesterov());
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
  CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(config, header, "data.train x.h5", true),
                    HasSubstr("data.train x.h5: augment.patch_size is 0") && HasSubstr("image side of 32") &&
                        HasSubstr("nearest valid sizes: 64"));
  header.width = 64;
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(config, header, "data.train x.h5", true));
}

TEST_CASE("training samples loaded whole for patches far smaller are said, with tiles as the way out", "[train]") {
  const auto config = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=512", "data.workers=3"});
  dpunet::data::ShardHeader header;
  header.channels = 3;
  header.pixel_type = dpunet::data::PixelType::kUInt8;
  header.height = header.width = 10000;  // a slide imported untiled: 1.6 GB loaded per patch
  CHECK_THAT(dpunet::train::large_sample_note(config, header),
             HasSubstr("the training samples are 10000x10000 and every 512x512 patch loads its sample whole (1526 MiB "
                       "in each of a rank's 3 loader threads)") &&
                 HasSubstr("dpunet data import --tile T"));
  header.height = header.width = 4000;  // 80 MB: not worth a word
  CHECK(dpunet::train::large_sample_note(config, header).empty());
  header.height = header.width = 10000;  // patches nearly as large as the sample
  const auto large_patches = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=4096"});
  CHECK(dpunet::train::large_sample_note(large_patches, header).empty());
  const auto whole_images = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=0"});
  CHECK(dpunet::train::large_sample_note(whole_images, header).empty());
}

TEST_CASE("data whose channels or classes are not the model's are refused, naming the set and the key", "[train]") {
  const auto config = dpunet::config::parse_config("", "w.yaml", {"model.n_channels=1", "model.n_classes=3"});
  dpunet::data::ShardHeader header;
  header.channels = 3;  // RGB images for a grey model
  header.n_classes = 3;
  header.height = header.width = 64;
  CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(config, header, "data.val v.h5", false),
                    HasSubstr("data.val v.h5: images have 3 channels but model.n_channels is 1"));
  header.channels = 1;
  header.n_classes = 2;
  CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(config, header, "data.train t.h5", true),
                    HasSubstr("data.train t.h5: masks have 2 classes but model.n_classes is 3"));
  header.n_classes = 3;
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(config, header, "data.train t.h5", true));
}

TEST_CASE("whole-image training refuses images that leave BatchNorm or InstanceNorm a 1x1 bottom map", "[train]") {
  dpunet::data::ShardHeader header;
  header.channels = 1;
  header.n_classes = 3;
  header.height = header.width = 64;
  const auto batch_norm =
      dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=0", "model.depth=6", "train.batch_size=1"});
  CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(batch_norm, header, "data.train x.h5", true),
                    HasSubstr("data.train x.h5: augment.patch_size is 0") &&
                        HasSubstr("with 64x64 images the depth-6 U-Net's bottom map is 1x1") &&
                        HasSubstr("BatchNorm one value per channel to normalise in a batch of 1") &&
                        HasSubstr("(model.norm, train.batch_size): use a larger batch"));
  // Validation normalises with the running statistics, and a batch of two has two values.
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(batch_norm, header, "data.val x.h5", false));
  const auto two = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=0", "model.depth=6"});
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(two, header, "data.train x.h5", true));
  header.width = 128;  // a 1x2 bottom map: two values
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(batch_norm, header, "data.train x.h5", true));

  header.width = 64;
  const auto instance =
      dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=0", "model.depth=6", "model.norm=instance"});
  for (const bool training : {true, false}) {
    CHECK_THROWS_WITH(dpunet::train::check_data_fits_model(instance, header, "data.val x.h5", training),
                      HasSubstr("bottom map is 1x1, which InstanceNorm would zero") &&
                          HasSubstr("(model.norm): use a smaller model.depth"));
  }
  header.height = 128;
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(instance, header, "data.train x.h5", true));
}

TEST_CASE("SyncBatchNorm's batch over all ranks must leave two values per channel at the bottom map", "[train]") {
  dpunet::data::ShardHeader header;
  header.channels = 1;
  header.n_classes = 3;
  header.height = header.width = 64;
  // A 16 px patch is 1x1 at the bottom of a depth-4 U-Net; config validation cannot know
  // the ranks, so it lets this through.
  const auto patches = dpunet::config::parse_config(
      "", "w.yaml", {"augment.patch_size=16", "model.depth=4", "model.norm=sync_batch", "train.batch_size=1"});
  CHECK_THROWS_WITH(dpunet::train::check_sync_batch_norm(patches, header, 1),
                    HasSubstr("model.norm sync_batch, train.batch_size 1 on 1 rank: with 16x16 patches") &&
                        HasSubstr("SyncBatchNorm one value per channel to normalise in a batch of 1 over all ranks") &&
                        HasSubstr("use a larger batch or patch, more ranks, or norm group"));
  CHECK_NOTHROW(dpunet::train::check_sync_batch_norm(patches, header, 2));
  // Whole images: their size counts, and the same config with whole images passes the
  // check of the data (BatchNorm's, per rank) while this one refuses it.
  const auto whole = dpunet::config::parse_config(
      "", "w.yaml", {"augment.patch_size=0", "model.depth=6", "model.norm=sync_batch", "train.batch_size=1"});
  CHECK_NOTHROW(dpunet::train::check_data_fits_model(whole, header, "data.train x.h5", true));
  CHECK_THROWS_WITH(dpunet::train::check_sync_batch_norm(whole, header, 1), HasSubstr("with 64x64 images"));
  CHECK_NOTHROW(dpunet::train::check_sync_batch_norm(whole, header, 2));
  // Other norms are not its business.
  const auto batch = dpunet::config::parse_config("", "w.yaml", {"augment.patch_size=16", "model.depth=4"});
  CHECK_NOTHROW(dpunet::train::check_sync_batch_norm(batch, header, 1));
}

namespace {

// Two 16x16 samples in one shard: a set to open, not to train on.
dpunet::data::SynthOptions two_samples() {
  dpunet::data::SynthOptions synth;
  synth.samples = 2;
  synth.shards = 1;
  synth.height = synth.width = 16;
  return synth;
}

}  // namespace

TEST_CASE("a folder holding the training and validation shards is refused as one set", "[train]") {
  dpunet::test::TempDir dir;
  dpunet::data::SynthOptions synth = two_samples();
  dpunet::data::write_synthetic_dataset(dir.path(), synth);
  const auto config = dpunet::config::parse_config("", "d.yaml", {"augment.patch_size=16"});
  // One set in the folder: taken whole.
  CHECK(dpunet::train::open_dataset(config, "data.train", dir.path())->size() == 2);
  synth.prefix = "val";
  dpunet::data::write_synthetic_dataset(dir.path(), synth);
  CHECK_THROWS_WITH(dpunet::train::open_dataset(config, "data.train", dir.path()),
                    HasSubstr("data.train: " + dir.path() + " holds shards of several sets (train-*.h5, val-*.h5)") &&
                        HasSubstr("e.g. " + dir / "train-*.h5"));
  CHECK_THROWS_WITH(dpunet::train::open_dataset(config, "data.val", dir.path()), HasSubstr("e.g. " + dir / "val-*.h5"));
  CHECK(dpunet::train::open_dataset(config, "data.train", dir / "train-*.h5")->size() == 2);
  // Shards of other names are the user's to group.
  std::filesystem::rename(dir / "val-00000.h5", dir / "extra.h5");
  CHECK(dpunet::train::open_dataset(config, "data.train", dir.path())->size() == 4);
}

TEST_CASE("training and validation sets that name their classes apart are refused", "[train]") {
  dpunet::test::TempDir dir;
  dpunet::data::SynthOptions synth = two_samples();
  synth.n_classes = 2;
  dpunet::data::write_synthetic_dataset(dir / "train", synth);
  dpunet::data::write_synthetic_dataset(dir / "val", synth);
  const auto config = dpunet::config::parse_config("", "d.yaml", {"augment.patch_size=16"});
  const auto open = [&](const std::string& folder) { return dpunet::data::Dataset(dir / folder); };
  CHECK_NOTHROW(dpunet::train::check_same_class_names(open("train"), open("val"), config));
  // A validation set of one sample whose classes are named `names`, in `folder`.
  const auto write_named = [&](const std::string& folder, std::vector<std::string> names) {
    dpunet::data::ShardHeader header = open("val").header();
    header.class_names = std::move(names);
    header.samples = 1;
    std::filesystem::create_directories(dir / folder);
    dpunet::data::ShardWriter writer(dir / (folder + "/val-00000.h5"), header);
    writer.write(0, std::vector<uint8_t>(256, 1).data(), std::vector<uint8_t>(256, 0).data());
    writer.finish();
  };
  // Renamed classes in the validation set: class 1 scored against another's masks.
  write_named("named", {"background", "vessel"});
  const std::string train_names = dpunet::data::class_names_text(open("train").header());
  INFO(train_names);
  CHECK_THROWS_WITH(dpunet::train::check_same_class_names(open("train"), open("named"), config),
                    HasSubstr("names the classes " + train_names + " but data.val") &&
                        HasSubstr("names them background,vessel (class 1 is '"));
  // The default names (class0, class1) agree with any.
  write_named("plain", {"class0", "class1"});
  CHECK_NOTHROW(dpunet::train::check_same_class_names(open("train"), open("plain"), config));
}
