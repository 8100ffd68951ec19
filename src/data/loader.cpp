// Loader: a job counter hands batch numbers to worker threads; finished batches wait
// in a map keyed by number until the consumer reaches them.
#include "data/loader.h"

#include <chrono>
#include <cstring>
#include <string>
#include <system_error>

#include <ATen/ATen.h>

#include "common/error.h"

namespace dpunet::data {

Loader::Loader(std::shared_ptr<const Dataset> dataset, DistributedSampler sampler, LoaderOptions options,
               SamplerState start)
    : dataset_(std::move(dataset)), sampler_(std::move(sampler)), options_(options), state_(start) {
  DPUNET_CHECK(options_.batch_size >= 1, "loader: batch_size must be at least 1, got ", options_.batch_size);
  DPUNET_CHECK(options_.workers >= 1, "loader: workers must be at least 1, got ", options_.workers);
  DPUNET_CHECK(options_.prefetch_batches >= 1, "loader: prefetch_batches must be at least 1");
  // The sampler hands out whole batches, so no epoch ends with a partial one.
  DPUNET_CHECK(sampler_.batch() == options_.batch_size, "loader: the sampler makes batches of ", sampler_.batch(),
               ", the loader of ", options_.batch_size);
  options_.augmentation.validate();
  job_epoch_ = start.epoch;
  epoch_start_ = start.position;
  epoch_indices_ = sampler_.rank_indices(job_epoch_, epoch_start_);
  workers_.reserve(static_cast<size_t>(options_.workers));
  try {
    for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { work(); });
  } catch (const std::system_error& e) {
    // Threads already started must be joined, or their destructors end the process.
    stop();
    throw Error("loader: could not start worker thread " + std::to_string(workers_.size() + 1) + " of " +
                std::to_string(options_.workers) + " (" + e.what() + "); lower data.workers");
  } catch (...) {
    stop();
    throw;
  }
}

Loader::~Loader() {
  stop();
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  consumed_.notify_all();
  produced_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int64_t Loader::batches_per_epoch() const {
  const int64_t share = sampler_.samples_per_rank();
  return share / options_.batch_size;
}

Loader::Job Loader::take_job() {
  auto epoch_done = [this] { return job_offset_ >= static_cast<int64_t>(epoch_indices_.size()); };
  if (epoch_done()) {
    ++job_epoch_;
    job_offset_ = 0;
    epoch_start_ = 0;
    epoch_indices_ = sampler_.rank_indices(job_epoch_);
  }
  const auto share = static_cast<int64_t>(epoch_indices_.size());
  Job job;
  job.sequence = next_sequence_++;
  job.epoch = job_epoch_;
  const int64_t count = std::min(options_.batch_size, share - job_offset_);
  job.indices.assign(epoch_indices_.begin() + job_offset_, epoch_indices_.begin() + job_offset_ + count);
  for (int64_t k = job_offset_; k < job_offset_ + count; ++k)
    job.repeats.push_back(sampler_.repeat_of(epoch_start_, k));
  job_offset_ += count;
  job.state_after = epoch_done() ? SamplerState{job_epoch_ + 1, 0}
                                 : SamplerState{job_epoch_, epoch_start_ + job_offset_ * sampler_.world_size()};
  return job;
}

Batch Loader::build(const Job& job) const {
  const ShardHeader& h = dataset_->header();
  const AugmentOptions& a = options_.augmentation;
  const int64_t ph = a.patch_height > 0 ? a.patch_height : h.height;
  const int64_t pw = a.patch_width > 0 ? a.patch_width : h.width;
  const auto batch = static_cast<int64_t>(job.indices.size());
  Batch out;
  out.epoch = job.epoch;
  out.indices = job.indices;
  out.state_after = job.state_after;
  const auto pinned = at::TensorOptions().pinned_memory(options_.pin_memory);
  out.images = at::empty({batch, h.channels, ph, pw}, pinned.dtype(at::kFloat));
  out.masks = at::empty({batch, ph, pw}, pinned.dtype(at::kByte));
  // The raw pixels' buffer lives as long as its worker thread: one allocation a worker.
  thread_local std::vector<unsigned char> scratch;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t index = job.indices[i];
    const Sample raw = load_sample(*dataset_, index, options_.normalization, scratch);
    // A padding copy of a sample gets draws of its own, not a second identical patch.
    const auto epoch = static_cast<uint64_t>(job.epoch), sample = static_cast<uint64_t>(index);
    const auto repeat = static_cast<uint64_t>(job.repeats[i]);
    Rng rng(repeat == 0 ? derive_seed({options_.seed, epoch, sample})
                        : derive_seed({options_.seed, epoch, sample, repeat}));
    // Without augmentation the patch is the same every epoch: the centre of the sample.
    const Sample ready = options_.augment ? augment(raw, a, rng) : centre_crop(raw, ph, pw);
    std::memcpy(out.images[i].data_ptr<float>(), ready.image.data(), ready.image.size() * sizeof(float));
    std::memcpy(out.masks[i].data_ptr<uint8_t>(), ready.mask.data(), ready.mask.size());
  }
  return out;
}

void Loader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  try {
    while (true) {
      consumed_.wait(lock,
                     [this] { return stopping_ || next_sequence_ < consumed_sequence_ + options_.prefetch_batches; });
      if (stopping_) return;
      const Job job = take_job();
      lock.unlock();
      Ready ready;
      try {
        ready.batch = build(job);
      } catch (...) {
        ready.error = std::current_exception();
      }
      lock.lock();
      ready_.emplace(job.sequence, std::move(ready));
      produced_.notify_all();
    }
  } catch (...) {
    // Escaping the thread would end the process without a word.
    if (!lock.owns_lock()) lock.lock();
    if (!worker_failure_) worker_failure_ = std::current_exception();
    produced_.notify_all();
  }
}

Batch Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto start = std::chrono::steady_clock::now();
  produced_.wait(lock, [this] { return stopping_ || worker_failure_ || ready_.count(consumed_sequence_) > 0; });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  DPUNET_CHECK(!stopping_, "loader: next() after the loader stopped");
  if (worker_failure_) {  // out of memory taking a job or queueing a batch: the run ends
    stopping_ = true;
    consumed_.notify_all();
    std::rethrow_exception(worker_failure_);
  }
  auto node = ready_.extract(consumed_sequence_);
  if (node.mapped().error) {
    stopping_ = true;  // a failed read ends the run; the other workers stop too
    consumed_.notify_all();
    std::rethrow_exception(node.mapped().error);
  }
  ++consumed_sequence_;
  state_ = node.mapped().batch.state_after;
  consumed_.notify_all();
  return std::move(node.mapped().batch);
}

SamplerState Loader::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

double Loader::wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_seconds_;
}

}  // namespace dpunet::data
