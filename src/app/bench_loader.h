// `bench train --data`: the timed step's batches through the training loader (shards
// read, augmented and normalised by its worker threads, pinned and copied to the GPU on a
// side stream, as training does), so that the breakdown's data wait is measured.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "config/config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "train/device_batches.h"

namespace dpunet::app {

// The shards, and the training config their loader is built from: the training defaults
// (augmentation, dataset normalisation with the shards' own statistics) with the
// benchmark's patch side, workers and model shape (a valid-padded model's context).
struct BenchData {
  std::shared_ptr<const data::Dataset> dataset;
  config::Config config;
  std::string description;  // for the report: what the batches are
};

// Opens `shards` (a folder, glob, index or .h5, as data.train takes them); errors name
// --data. `model` gives the shape the loader's patches are cut for; `size` the patch side.
BenchData open_bench_data(const std::string& shards, int workers, int64_t size, const config::ModelConfig& model);

// One step's source of batches: its own loader over this rank's share of the shards and
// the copies to `device`, one batch ahead.
class BenchBatches {
 public:
  BenchBatches(const BenchData& data, int rank, int world_size, int64_t batch, c10::Device device, bool channels_last);
  ~BenchBatches();
  BenchBatches(const BenchBatches&) = delete;
  BenchBatches& operator=(const BenchBatches&) = delete;

  // The next batch on the device (images float32, masks int64), and the milliseconds the
  // host waited for it (on a GPU, next() finds the batch prefetch() started in flight).
  data::Batch next(double& wait_ms);
  // Starts the next batch's copy once this step's work is queued, as training does; the
  // milliseconds the host waited here for the loader (on a GPU; nothing on a CPU, where
  // next() takes the batch from the loader itself).
  double prefetch();

 private:
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<train::DeviceBatches> device_batches_;
};

}  // namespace dpunet::app
