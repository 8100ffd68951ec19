// The Trainer behind run_training, shared by trainer.cpp (start-up and the loop) and
// trainer_resume.cpp (continuing from a checkpoint). Private to src/train.
#pragma once

#include <torch/optim/optimizer.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/background_writer.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/store.h"
#include "config/config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "dist/ddp.h"
#include "dist/host_vote.h"
#include "model/unet.h"
#include "train/device_batches.h"
#include "train/loss.h"
#include "train/loss_scaler.h"
#include "train/run_logger.h"
#include "train/trainer.h"

namespace dpunet::train::detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "step 4" or "steps 3-7", for messages.
inline std::string step_range(int64_t first, int64_t last) {
  return first == last ? "step " + std::to_string(last) : "steps " + std::to_string(first) + "-" + std::to_string(last);
}

// The checkpoint `options.resume` names: none, a path, or (auto) the newest valid one of
// the run directory, chosen by rank 0 for every rank.
std::optional<checkpoint::LoadedCheckpoint> find_resume_point(const TrainOptions& options,
                                                              const checkpoint::CheckpointStore& store,
                                                              const dist::Context& context, dist::Communicator& comm,
                                                              RunLogger& logger);

class Trainer {
 public:
  Trainer(const config::Config& config, dist::Context& context, const TrainOptions& options);
  int run();

 private:
  void resume(const checkpoint::LoadedCheckpoint& loaded);
  void resolve_normalization(const std::optional<config::Config>& saved);
  data::SamplerState resume_position(const checkpoint::LoadedCheckpoint& loaded, const config::Config& saved);
  // The checkpoint's own position, or the next epoch's start when nothing of its epoch is
  // left for this run's global batch.
  data::SamplerState continued_position(const checkpoint::LoadedCheckpoint& loaded);
  void prepare_run_directory(const std::optional<checkpoint::LoadedCheckpoint>& loaded);
  // The checkpoint is this run directory's own file for its step (not another run's, nor
  // one set aside earlier): its history and best stay.
  bool is_own_checkpoint(const checkpoint::LoadedCheckpoint& loaded) const;
  torch::Tensor forward(const torch::Tensor& images);
  // One optimizer step; `epoch`: the epoch its first batch came from; `epoch_ended` set
  // when one of its batches ended an epoch.
  torch::Tensor train_step(int64_t* epoch, bool* epoch_ended);
  bool agree_to_stop();
  // Every rank fails together, before a validation or checkpoint of weights that a NaN
  // or infinite loss or gradient has reached (one small all-reduce, only at those steps).
  void check_loss_and_weights_finite();
  [[noreturn]] void fail_non_finite_loss(const std::string& how_many) const;
  bool validation_due(bool epoch_ended, bool last) const;
  void validate_now(bool* improved);
  // Every rank calls it (the loss window's mean is a collective); rank 0 writes.
  // `logged_now`: this step's log line takes the loss window, so the checkpoint has none.
  void save(bool best, bool logged_now);
  double elapsed_s() const;  // wall time of the run so far, over every resume
  // Starts a stretch that logged throughput leaves out (validation, checkpoint snapshot).
  Clock::time_point pause_window();
  // Logs the loss window (the mean over ranks of loss_window_ / window_steps_) and the
  // throughput since the last line, then starts a new window.
  void log_progress();
  // What a checkpoint records of the loss window: nothing when this step logs it, else
  // each rank's sum and their mean (a collective, taken by all ranks or none).
  struct LossWindow {
    double mean_sum = 0;  // over ranks
    int64_t steps = 0;
    std::vector<double> rank_sums;  // in rank order
  };
  LossWindow loss_window_for_save(bool logged_now);
  // Every rank calls it: returns once rank 0's checkpoint write is done (rethrowing its
  // failure there), the ranks voting every few seconds meanwhile. `which` names it in the
  // log lines said while it takes long.
  void wait_for_checkpoint_write(const std::string& which = "the previous checkpoint");
  // Rank 0's part of save(): the snapshot, handed to the writer's thread.
  void snapshot(bool best, const LossWindow& window);
  // The checkpoint resumed from, written into this run directory (resumed_from_elsewhere_).
  void write_resumed_copy();

  config::Config config_;  // with the data's normalisation statistics filled in
  dist::Context& context_;
  TrainOptions options_;
  c10::Device device_;
  std::shared_ptr<dist::Communicator> comm_;
  dist::HostVote stop_vote_;
  RunLogger logger_;
  checkpoint::CheckpointStore store_;
  model::Unet model_{nullptr};
  std::unique_ptr<dist::DistributedDataParallel> ddp_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::shared_ptr<const data::Dataset> train_data_, val_data_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<DeviceBatches> batches_;
  LossOptions loss_options_;
  LossScaler scaler_;
  bool autocast_;
  at::ScalarType autocast_dtype_ = at::kBFloat16;
  int64_t step_ = 0;
  int64_t epoch_ = 0;
  torch::Tensor nonfinite_steps_;  // on the device: steps since checked_step_ whose loss was NaN/inf
  int64_t checked_step_ = 0;
  double best_score_ = -1;
  int64_t best_step_ = -1;           // of the checkpoint marked best
  bool validation_pending_ = false;  // see checkpoint::TrainingState
  // The checkpoint resumed from is this run directory's own (is_own_checkpoint), as rank
  // 0 sees it: the answer decides collectives (a new best's checkpoint), so every rank
  // takes one, though a node-local copy of the run directory could answer otherwise.
  bool own_checkpoint_ = false;
  // Resumed from a checkpoint that is not the run directory's own: run() writes it there
  // before the first step.
  bool resumed_from_elsewhere_ = false;
  bool epoch_ended_at_resume_ = false;  // see continued_position
  bool ends_at_resume_ = false;         // train.steps lowered to the resumed step: see the constructor
  // Writes checkpoints while training goes on; declared last, so it finishes its write
  // before the store and everything else it might touch are gone.
  checkpoint::BackgroundWriter writer_;
  // Throughput bookkeeping between log lines.
  Clock::time_point run_start_ = Clock::now(), window_start_;
  // Where the run's pace for the ETA is taken from (the end of its first step).
  Clock::time_point paced_from_ = Clock::now();
  int64_t paced_from_step_ = 0;
  double elapsed_before_ = 0;  // the resumed checkpoint's elapsed_s: time_s continues from it
  double window_wait_start_ = 0;
  double window_paused_ = 0;  // validation and checkpoint snapshots: not training time
  // The loss since the last log line, on the device: this rank's sum, plus (after a
  // resume) the checkpoint's mean over ranks for steps the stopped run had not logged.
  torch::Tensor loss_window_;
  double restored_window_sum_ = 0;
  int64_t window_steps_ = 0;        // steps in loss_window_, restored ones included
  int64_t window_steps_timed_ = 0;  // steps since window_start_ in this process: throughput
};

}  // namespace dpunet::train::detail
