// Turning a Config into the objects a run needs: the model, the optimizer, the loss
// options, the loader options. Each names the config keys in its errors.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>

#include "config/config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/ddp.h"
#include "model/unet.h"
#include "train/loss.h"
#include "train/optimizer.h"

namespace dpunet::train {

model::UnetOptions unet_options(const config::Config& config, std::shared_ptr<dist::Communicator> comm);
model::Unet build_model(const config::Config& config, std::shared_ptr<dist::Communicator> comm);
// Convolution weights in NHWC, to match NHWC activations so cuDNN picks its channels-last
// kernels. Before DDP and the optimizer see the parameters: they take their layout.
void use_channels_last_weights(torch::nn::Module& model);
std::unique_ptr<torch::optim::Optimizer> build_optimizer(const config::Config& config,
                                                         const std::vector<torch::Tensor>& parameters);
LossOptions loss_options(const config::Config& config);
dist::DdpOptions ddp_options(const config::Config& config);
// data.normalization with data.channel_mean/std (empty: the statistics of the shards read).
data::Normalizer normalizer(const config::Config& config);
data::LoaderOptions loader_options(const config::Config& config, bool pin_memory);
data::SamplerOptions sampler_options(const config::Config& config);
// cuDNN's autotuning and `precision.deterministic` (deterministic algorithms only) for a
// run on a GPU, set both ways; errors name the keys. Before the run's threads start.
void configure_gpu_numerics(const config::Config& config);
// Checks that the data fit the model: channels and classes; for whole-image input
// (augment.patch_size 0), that the images tile and leave the bottom map enough values to
// normalise (BatchNorm's batch statistics only for the `training` set).
void check_data_fits_model(const config::Config& config, const data::ShardHeader& header, const std::string& which,
                           bool training);
// SyncBatchNorm's training statistics over the batches of `world_size` ranks leave two
// values per channel at the bottom map, or it fails at the first step: checked once the
// ranks are known (config validation leaves this norm out).
void check_sync_batch_norm(const config::Config& config, const data::ShardHeader& train, int world_size);

// The dataset config key `key` ("data.train") names, checked against the model; its
// errors name the key.
std::shared_ptr<const data::Dataset> open_dataset(const config::Config& config, const std::string& key,
                                                  const std::string& spec);
// Training on a validation shard would score the model on what it learned from: a
// shard file read by both sets (a folder holding train-*.h5 and val-*.h5 given as
// data.train) is an error naming it.
void check_no_shared_shards(const data::Dataset& train, const data::Dataset& val, const config::Config& config);
// Validation scores class k under the training set's name for it: two sets that name
// their classes apart (neither with the defaults) measure something else.
void check_same_class_names(const data::Dataset& train, const data::Dataset& val, const config::Config& config);
// Once the normalisation statistics are resolved: checks that `which` (the validation
// set) is stored in their units, before the first validation instead of at it.
void check_statistics_fit(const config::Config& config, const data::ShardHeader& header, const std::string& which);
// A line for each channel the resolved statistics say is constant (it is centred, not
// scaled: data::dataset_affine), so a dead channel in the training data gets noticed.
std::vector<std::string> constant_channel_notes(const config::Config& config);
// Every patch loads, converts and normalises its whole sample: whole slides imported
// untiled cost each loader thread that much memory, and most of its time. A warning
// with the way out (tiles) where the training samples are that large; else empty.
std::string large_sample_note(const config::Config& config, const data::ShardHeader& train);

}  // namespace dpunet::train
