// The prefetching loader: background threads read, augment and collate this rank's
// batches ahead of the train loop, which only pops ready ones. Batches come out in the
// sampler's order whatever the number of threads, epochs roll over on their own, and
// state() is the sampler position after the last batch handed out, which is what a
// checkpoint stores.
#pragma once

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/normalize.h"
#include "data/sampler.h"

namespace dpunet::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  int workers = 2;
  int prefetch_batches = 4;  // batches ready or in flight ahead of the consumer
  bool pin_memory = false;   // page-locked batches for asynchronous copies to a GPU
  Normalizer normalization;  // with the training set's statistics
  bool augment = true;
  AugmentOptions augmentation;  // its patch size also applies when augment is off
  uint64_t seed = 0;            // augmentation seed; each sample's stream is (seed, epoch, index[, repeat])
};

struct Batch {
  torch::Tensor images;          // [B, C, P, P] float32
  torch::Tensor masks;           // [B, P, P] uint8 class ids
  std::vector<int64_t> indices;  // global sample indices
  int64_t epoch = 0;
  SamplerState state_after;  // the sampler state once this batch is consumed
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, DistributedSampler sampler, LoaderOptions options,
         SamplerState start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch, waiting for it if it is not ready; rethrows a worker's error.
  Batch next();
  SamplerState state() const;
  int64_t batches_per_epoch() const;
  // Seconds next() has spent waiting for workers, in total.
  double wait_seconds() const;

 private:
  struct Job {
    int64_t sequence = 0;
    int64_t epoch = 0;
    std::vector<int64_t> indices;
    std::vector<int64_t> repeats;  // DistributedSampler::repeat_of each index: padding copies draw anew
    SamplerState state_after;
  };
  struct Ready {
    Batch batch;
    std::exception_ptr error;
  };

  void stop();     // ends and joins the workers
  Job take_job();  // called with mutex_ held
  Batch build(const Job& job) const;
  void work();

  std::shared_ptr<const Dataset> dataset_;
  DistributedSampler sampler_;
  LoaderOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable produced_, consumed_;
  bool stopping_ = false;
  // Job generation: where the next batch starts in this rank's share of an epoch.
  int64_t job_epoch_;
  int64_t job_offset_ = 0;
  int64_t epoch_start_ = 0;             // global position job_epoch_ resumed at (0: its start)
  std::vector<int64_t> epoch_indices_;  // this rank's share of job_epoch_ from epoch_start_ on
  int64_t next_sequence_ = 0;
  int64_t consumed_sequence_ = 0;
  std::map<int64_t, Ready> ready_;
  // An error taking a job or queueing a batch (out of memory): it ends its worker, and
  // the next call of next() rethrows it.
  std::exception_ptr worker_failure_;
  SamplerState state_;
  double wait_seconds_ = 0;
  std::vector<std::thread> workers_;
};

}  // namespace dpunet::data
