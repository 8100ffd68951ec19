// One training checkpoint file: model parameters and buffers, optimizer state and the
// TrainingState that makes a resumed run continue exactly. Format (version 1):
//   "DPUNETCK" | u32 version | u64 payload bytes | u32 CRC-32 of the payload | payload
// where the payload is a torch archive. Any damage (truncation, flipped bytes, another
// file) is detected before anything is loaded.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/sampler.h"

namespace dpunet::checkpoint {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr int kScoreVersion = 2;

struct TrainingState {
  int64_t step = 0;  // optimizer steps completed
  // The epoch that step began in, which its log rows (and a pending validation) name;
  // the sampler may be in the next one already. -1: unknown (older files).
  int64_t step_epoch = -1;
  data::SamplerState sampler;  // where the loader continues
  int64_t dataset_size = 0;    // training samples the sampler's order covered (0: unknown)
  // train::describe_dataset of that training set: its shards, in order (empty: unknown).
  std::string dataset_description;
  // The same of the validation set its scores (best_score) came from (empty: none, or unknown).
  std::string val_dataset_description;
  int world_size = 1;           // of the run that wrote it
  double elapsed_s = 0;         // wall time the run had spent up to this step, over every resume
  std::string config_yaml;      // the resolved config
  double loss_scale = 65536.0;  // fp16 loss scaler
  int64_t loss_scale_clean_steps = 0;
  int64_t loss_scale_skipped = 0;  // steps skipped since the last log line (0: older files)
  int64_t loss_scale_skipped_in_a_row = 0;
  double best_score = -1;  // best validation Dice so far (-1: none yet)
  int64_t best_step = -1;  // the step of the checkpoint marked best (-1: none)
  // A stop skipped the validation due at `step` (its grace time went to the checkpoint):
  // the resumed run validates first, so its history equals an uninterrupted run's.
  bool validation_pending = false;
  // The training loss not yet logged at `step` (the mean over ranks of the sum since the
  // last log line, and its steps): the resumed run's first line then covers the same
  // steps, with the same value, as an uninterrupted run's.
  double loss_window_sum = 0;
  int64_t loss_window_steps = 0;
  // Each rank's own sum, in rank order: a resume on as many ranks restores each rank's,
  // and its line averages them as the uninterrupted run's did, to the bit. (Empty: older
  // files; another world size takes loss_window_sum on every rank.)
  std::vector<double> loss_window_rank_sums;
  // How best_score was scored: 1 counted a class absent from masks and predictions as
  // Dice 1, 2 (this version) leaves it out of the mean. Files without it are 1.
  int score_version = kScoreVersion;
  // The gradient buckets' layout (DistributedDataParallel::bucket_order), so that the
  // resumed run's first step reduces as the uninterrupted run's would. Empty: unknown.
  std::vector<int64_t> bucket_order;
  // torch's default CPU generator, as rank 0 had it; every rank seeds it with run.seed
  // and draws alike (model initialisation), so every rank restores it. Nothing in a step
  // draws from it yet; it is kept for a future random layer.
  torch::Tensor rng_cpu;
  // Reserved for the CUDA generator's state: written empty, as no step draws from it.
  torch::Tensor rng_cuda;
};

// Serialises and writes atomically (common/atomic_file.h): encode_checkpoint, then
// write_checkpoint.
void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const TrainingState& state);
// The two halves of a save. encode_checkpoint takes the snapshot (tensors are copied off
// the device) and must run while nothing changes the model or optimizer; write_checkpoint
// adds the frame and checksum and writes the file, and may run on another thread while
// training goes on.
std::string encode_checkpoint(torch::nn::Module& model, torch::optim::Optimizer& optimizer, const TrainingState& state);
void write_checkpoint(const std::string& path, const std::string& payload);

// A verified checkpoint, read into memory; restore() puts it into a model and optimizer
// built the same way as the ones that were saved.
class LoadedCheckpoint {
 public:
  explicit LoadedCheckpoint(const std::string& path);

  const std::string& path() const { return path_; }
  const TrainingState& state() const { return state_; }
  // The payload's CRC-32 from the frame: two ranks that read the same file agree on it.
  uint32_t crc() const { return crc_; }
  // Loads parameters and buffers; throws naming a missing tensor, or listing tensors
  // whose shape or type differ from the model's.
  void restore_model(torch::nn::Module& model) const;
  // Loads the optimizer's state (moments, step counts); its hyper-parameters stay those
  // it was built with.
  void restore_optimizer(torch::optim::Optimizer& optimizer) const;

 private:
  std::string path_;
  mutable torch::serialize::InputArchive archive_;
  TrainingState state_;
  uint32_t crc_ = 0;
};

// True when `path` starts like a dpunet checkpoint (reads 8 bytes): to tell one from a
// safetensors file given in its place.
bool has_checkpoint_magic(const std::string& path);

// True when `path` holds a complete, undamaged checkpoint (reads the whole file); throws
// when the file cannot be read at all.
bool is_valid_checkpoint(const std::string& path, std::string* why = nullptr);

}  // namespace dpunet::checkpoint
