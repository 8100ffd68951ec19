// The loader-fed batches of `bench train --data`: built as the trainer builds its own.
#include "app/bench_loader.h"

#include "app/bench_timing.h"
#include "common/error.h"
#include "data/sampler.h"
#include "data/shard_format.h"
#include "train/setup.h"

namespace dpunet::app {

BenchData open_bench_data(const std::string& shards, int workers, int64_t size, const config::ModelConfig& model) {
  BenchData d;
  config::Config& c = d.config;
  c.data.train = shards;
  try {
    d.dataset = std::make_shared<const data::Dataset>(shards);
  } catch (const Error& e) {
    throw Error("--data: " + std::string(e.what()));
  }
  const data::ShardHeader& h = d.dataset->header();
  c.model = model;
  c.model.n_channels = h.channels;
  c.model.n_classes = h.n_classes;
  c.data.workers = workers;
  c.augment.patch_size = size;
  // Dataset normalisation, the training default, with the shards' own statistics.
  c.data.channel_mean = h.channel_mean;
  c.data.channel_std = h.channel_std;
  c.data.stats_pixel_type = data::pixel_type_name(h.pixel_type);
  d.description = "loader: " + shards + " (" + std::to_string(h.samples) + " samples of " + std::to_string(h.height) +
                  "x" + std::to_string(h.width) + "x" + std::to_string(h.channels) + ", " + std::to_string(workers) +
                  " workers per rank, the training defaults' augmentation)";
  return d;
}

BenchBatches::BenchBatches(const BenchData& data, int rank, int world_size, int64_t batch, c10::Device device,
                           bool channels_last) {
  config::Config c = data.config;
  c.train.batch_size = batch;
  data::LoaderOptions loading = train::loader_options(c, device.is_cuda());
  // Shards with an ignore label hold unlabelled pixels: patches go where labels are.
  loading.augmentation.sparse_labels = data.dataset->header().ignore_label >= 0;
  data::SamplerOptions sampling = train::sampler_options(c);
  sampling.dataset = "--data " + c.data.train;  // named in the sampler's errors
  loader_ = std::make_unique<data::Loader>(
      data.dataset, data::DistributedSampler(data.dataset->size(), rank, world_size, sampling), loading);
  device_batches_ = std::make_unique<train::DeviceBatches>(*loader_, device, train::DeviceBatchOptions{channels_last});
}

BenchBatches::~BenchBatches() = default;

data::Batch BenchBatches::next(double& wait_ms) {
  const double start = now_ms();
  data::Batch batch = device_batches_->next();
  wait_ms = now_ms() - start;
  return batch;
}

double BenchBatches::prefetch() {
  const double start = now_ms();
  device_batches_->prefetch();
  return now_ms() - start;
}

}  // namespace dpunet::app
