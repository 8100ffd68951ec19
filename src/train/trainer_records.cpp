// What a run records as it goes: its checkpoints (the training state, snapshotted here and
// written on the writer's thread) and its log lines (the loss window, throughput, ETA).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "train/device_memory.h"
#include "train/rank_agreement.h"
#include "train/schedule.h"
#include "train/trainer_internal.h"

namespace dpunet::train::detail {

Clock::time_point Trainer::pause_window() {
  // The steps queued on the GPU before the pause are training time: let them finish first.
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  return Clock::now();
}

double Trainer::elapsed_s() const {
  return elapsed_before_ + seconds_since(run_start_);
}

void Trainer::wait_for_checkpoint_write(const std::string& which) {
  // The other ranks wait for a slow write (a busy network file system, a large model)
  // in short votes rather than in their next collective, whose timeout it could outlast:
  // a false stall. A rank that died still ends them, at the vote's own timeout.
  const auto slice = std::clamp<std::chrono::milliseconds>(stop_vote_.timeout() / 4, std::chrono::milliseconds(100),
                                                           std::chrono::seconds(5));
  // However long it takes (a write cannot be called off), said every 5 minutes: a disk
  // that no longer answers (a hung network mount) shows in the log.
  const Clock::time_point start = Clock::now();
  bool said = false;
  Clock::time_point said_at = start;
  while (stop_vote_.any(context_.is_root() && !writer_.idle_within(slice))) {
    if (!said) {
      logger_.info("step " + std::to_string(step_) + " waits for " + which +
                   ", still being written (a slow or busy disk?)");
    } else if (seconds_since(said_at) >= 300) {
      logger_.info("step " + std::to_string(step_) + " still waits for " + which + ", after " +
                   std::to_string(static_cast<long long>(seconds_since(start) / 60)) + " min");
    } else {
      continue;
    }
    said = true;
    said_at = Clock::now();
  }
  if (said) {
    logger_.info("step " + std::to_string(step_) + ": " + which + " is written, after " +
                 std::to_string(static_cast<long long>(std::lround(seconds_since(start)))) + " s of waiting");
  }
  // Left out of the logged throughput, as the snapshot is: the steps' own pace.
  window_paused_ += seconds_since(start);
  writer_.wait();
}

void Trainer::save(bool best, bool logged_now) {
  const LossWindow window = loss_window_for_save(logged_now);
  wait_for_checkpoint_write();
  if (context_.is_root()) snapshot(best, window);
  // The other ranks would next meet rank 0 in the step's first gradient bucket, waiting
  // there under the collectives' timeout for as long as the snapshot takes (a large model
  // on a slow host against a short distributed.timeout_s: a false stall). They wait for
  // it here instead, under start-up's longer timeout. Rank 0 comes last, its snapshot
  // done: it keeps the usual timeout, so that a rank that stopped meanwhile is seen as
  // soon as in any step, not minutes later.
  std::optional<dist::LongerTimeout<dist::HostVote>> snapshot_time;
  if (!context_.is_root()) snapshot_time.emplace(stop_vote_, dist::kStartupTimeout);
  (void)stop_vote_.any(false);
}

void Trainer::snapshot(bool best, const LossWindow& window) {
  const Clock::time_point paused = pause_window();
  checkpoint::TrainingState state;
  state.step = step_;
  state.step_epoch = epoch_;
  state.sampler = batches_->state();
  state.dataset_size = train_data_->size();
  state.dataset_description = describe_dataset(*train_data_);
  if (val_data_) state.val_dataset_description = describe_dataset(*val_data_);
  state.world_size = context_.world_size();
  state.elapsed_s = elapsed_s();
  state.config_yaml = config::to_yaml(config_);
  const LossScalerState scaler = scaler_.state();  // read back from the device
  state.loss_scale = scaler.scale;
  state.loss_scale_clean_steps = scaler.clean_steps;
  // As the loss window: skips the log line right after this snapshot reports (or none
  // since the last line) are not the resumed run's to log again.
  state.loss_scale_skipped = window.steps > 0 ? scaler.skipped : 0;
  state.loss_scale_skipped_in_a_row = scaler.skipped_in_a_row;
  if (best) best_step_ = step_;
  state.best_score = best_score_;
  state.best_step = best_step_;
  state.validation_pending = validation_pending_;
  state.loss_window_sum = window.mean_sum;
  state.loss_window_steps = window.steps;
  state.loss_window_rank_sums = window.rank_sums;
  state.bucket_order = ddp_->bucket_order();
  // Nothing in the step draws from torch's generator today; its state is kept so that a
  // future random op (dropout, stochastic depth) resumes exactly too.
  state.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  // The snapshot is taken here; writing it (checksum, file, fsync, pruning old ones) runs
  // on the writer's thread, overlapping the next steps.
  auto payload = std::make_shared<const std::string>(checkpoint::encode_checkpoint(*model_, *optimizer_, state));
  // The copy synced the device: weights updated from a gradient all-reduce that failed or
  // stalled are never written over a good checkpoint.
  comm_->raise_pending_failure();
  writer_.submit([this, payload, step = step_, best, keep = config_.checkpoint.keep_last] {
    store_.commit(
        step, [&](const std::string& path) { checkpoint::write_checkpoint(path, *payload); }, best, keep);
  });
  window_paused_ += seconds_since(paused);
}

Trainer::LossWindow Trainer::loss_window_for_save(bool logged_now) {
  // window_steps_ is the same on every rank, so they all take the collective or none.
  if (logged_now || window_steps_ == 0) return {};
  const torch::Tensor mine = loss_window_.detach().to(torch::kDouble).reshape({1});
  torch::Tensor all = torch::empty({context_.world_size()}, mine.options());
  comm_->all_gather(mine, all);
  LossWindow window;
  window.steps = window_steps_;
  const torch::Tensor host = all.cpu();
  window.rank_sums.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  for (const double sum : window.rank_sums) window.mean_sum += sum / static_cast<double>(window.rank_sums.size());
  return window;
}

void Trainer::log_progress() {
  const int64_t steps = window_steps_;
  // One all-reduce every log interval: the loss shown is the mean over all ranks.
  torch::Tensor loss = loss_window_.detach().to(torch::kFloat).reshape({1}).clone();
  comm_->all_reduce(loss, dist::ReduceOp::kAvg);
  const double seconds = std::max(1e-9, seconds_since(window_start_) - window_paused_);
  const double waited = loader_->wait_seconds() - window_wait_start_;
  TrainRecord r;
  r.step = step_;
  r.total_steps = config_.train.steps;
  r.epoch = epoch_;
  r.loss = loss.item<double>() / static_cast<double>(std::max<int64_t>(1, steps));
  if (!std::isfinite(r.loss)) fail_non_finite_loss(step_range(step_ - steps + 1, step_));
  r.lr = learning_rate(config_.schedule, config_.optimizer.lr, step_ - 1, config_.train.steps);
  const int64_t timed = std::max<int64_t>(1, window_steps_timed_);
  r.samples_per_s =
      static_cast<double>(timed * config_.train.accumulation * config_.train.batch_size * context_.world_size()) /
      seconds;
  r.data_wait_share = seconds > 0 ? waited / seconds : 0;
  r.step_ms = 1000.0 * seconds / static_cast<double>(timed);
  r.gpu_memory_gb = take_peak_gpu_memory_gib(device_);
  const int64_t end_step =
      options_.stop_at_step > 0 ? std::min(options_.stop_at_step, config_.train.steps) : config_.train.steps;
  r.remaining_s = remaining_seconds(step_, end_step, paced_from_step_, seconds_since(paced_from_), r.step_ms);
  r.elapsed_s = elapsed_s();
  LossScalerSkips skips;
  if (scaler_.enabled()) {
    skips = scaler_.take_skips();  // the same on every rank: their gradients are
    r.skipped_steps = skips.skipped;
    r.loss_scale = skips.scale;
  }
  logger_.train(r);
  if (skips.in_a_row >= kSkippedStepsToStop) {
    DPUNET_FAIL_ON_EVERY_RANK(
        false, "fp16: the last ", skips.in_a_row, " steps were all skipped (up to step ", step_,
        "): their gradients held NaN or inf at every loss scale down to ", skips.scale,
        ", so the weights have not changed since step ", step_ - skips.in_a_row,
        ". Loss scaling cures gradients that overflow fp16, not a NaN that backward makes: train in bf16 "
        "(precision.dtype, fp32's range), or resume from a checkpoint (--resume PATH) with a lower optimizer.lr or "
        "after checking the data (dpunet data inspect --verify)");
  }
  loss_window_.zero_();
  window_steps_ = 0;
  window_steps_timed_ = 0;
  window_start_ = Clock::now();
  window_wait_start_ = loader_->wait_seconds();
  window_paused_ = 0;
}

}  // namespace dpunet::train::detail
