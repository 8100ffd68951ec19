// Trainer: continuing from a checkpoint (which one, its state, the data position, the
// normalisation statistics, the run directory's history).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "train/rank_agreement.h"
#include "train/run_history.h"
#include "train/setup.h"
#include "train/trainer_internal.h"

namespace dpunet::train::detail {
namespace {

bool close_to(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(a[i] - b[i]) > 1e-6 * std::max({1.0, std::abs(a[i]), std::abs(b[i])})) return false;
  }
  return true;
}

std::string list_text(const std::vector<double>& values) {
  std::string text;
  char number[32];
  for (double v : values) {
    std::snprintf(number, sizeof(number), "%.6g", v);
    text += (text.empty() ? "" : ", ") + std::string(number);
  }
  return "[" + text + "]";
}
}  // namespace

std::optional<checkpoint::LoadedCheckpoint> find_resume_point(const TrainOptions& options,
                                                              const checkpoint::CheckpointStore& store,
                                                              const dist::Context& context, dist::Communicator& comm,
                                                              RunLogger& logger) {
  if (options.resume == "none") return std::nullopt;
  if (options.resume != "auto") {
    // A path every rank reads for itself, and usually fails alike on.
    // A best/latest pointer names a checkpoint, as for predict and export. A folder does
    // not: a run goes on from its newest checkpoint (--resume auto), not its best.
    std::optional<checkpoint::LoadedCheckpoint> loaded;
    std::string chosen;
    fail_together(comm, [&] {
      std::error_code ec;
      DPUNET_CHECK(!std::filesystem::is_directory(options.resume, ec), "--resume ", options.resume,
                   " is a folder: name a checkpoint file (its checkpoints/step-*.ckpt, or checkpoints/latest), or "
                   "give --resume auto to continue from run.dir's newest valid checkpoint");
      loaded.emplace(checkpoint::resolve_checkpoint_argument(options.resume, &chosen));
    });
    if (!chosen.empty()) logger.info("--resume " + options.resume + ": " + chosen);
    return loaded;
  }
  // Rank 0 picks and the others follow: ranks that looked for themselves could see the
  // run directory differently (a network filesystem's cache) and resume at different steps.
  // Its refusals (a checkpoint of a newer format, one it cannot read, an unreadable
  // checkpoints/) stop every rank with its message, not the others waiting in the broadcast.
  std::string path;
  fail_together(comm, [&] {
    if (context.is_root()) path = store.latest_valid([&](const std::string& m) { logger.warn(m); }).value_or("");
  });
  path = comm.broadcast_string(path, /*root=*/0);
  if (path.empty()) {
    logger.info("resume auto: no checkpoint in " + store.directory() + ", starting fresh");
    return std::nullopt;
  }
  // Every rank reads the file rank 0 chose: one that cannot (a node-local run directory,
  // a network filesystem's cache) fails the start on every rank with its name.
  std::optional<checkpoint::LoadedCheckpoint> loaded;
  fail_together(comm, [&] { loaded.emplace(path); });
  return loaded;
}

void Trainer::resume(const checkpoint::LoadedCheckpoint& loaded) {
  loaded.restore_optimizer(*optimizer_);
  const auto& s = loaded.state();
  step_ = s.step;
  checked_step_ = s.step;  // the loss of the steps before was checked by the run that took them
  elapsed_before_ = s.elapsed_s;
  // Each rank's own sum where the run had as many ranks: the next line's mean over them
  // is then the uninterrupted run's, to the bit.
  const bool same_ranks = static_cast<int>(s.loss_window_rank_sums.size()) == context_.world_size();
  restored_window_sum_ = same_ranks ? s.loss_window_rank_sums[context_.rank()] : s.loss_window_sum;
  window_steps_ = s.loss_window_steps;
  best_score_ = s.best_score;
  best_step_ = s.best_step;
  validation_pending_ = s.validation_pending;
  // Another run's checkpoint (continued into this run.dir), or one set aside: its best
  // names a file this run's `best` pointer cannot point at; this run's own validations
  // choose its best. (A run that kept no best checkpoint still scored its validations.)
  if ((best_step_ >= 0 || best_score_ >= 0) && !own_checkpoint_) {
    logger_.info(loaded.path() + " is not this run directory's own: its best score " + std::to_string(best_score_) +
                 " stays with it, and this run's best is chosen among its own validations");
    best_score_ = -1;
    best_step_ = -1;
  }
  if (s.score_version < checkpoint::kScoreVersion && best_score_ >= 0) {
    // Scores of then and now differ where a class is absent: compare only new ones.
    logger_.info(loaded.path() + " scored absent classes as Dice 1: its best score " + std::to_string(best_score_) +
                 " is not compared with the scores from here on");
    best_score_ = -1;
  }
  scaler_.load(
      LossScalerState{s.loss_scale, s.loss_scale_clean_steps, s.loss_scale_skipped, s.loss_scale_skipped_in_a_row});
  if (s.rng_cpu.defined()) {  // see save()
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    try {
      generator.set_state(s.rng_cpu);
    } catch (const c10::Error& e) {
      // A state written by another LibTorch build: say which file, not only ATen's words.
      DPUNET_FAIL(loaded.path(), ": its CPU random-number state does not load into this LibTorch (",
                  e.what_without_backtrace(), ")");
    }
  }
  logger_.info("resumed from " + loaded.path() + " at step " + std::to_string(step_));
  if (s.world_size != context_.world_size()) {
    logger_.info("the checkpoint was written by " + std::to_string(s.world_size) + " ranks, this run has " +
                 std::to_string(context_.world_size()) + ": the sampler re-splits the rest of the epoch");
  }
}

// `dataset` normalisation uses the training set's statistics everywhere: in training, in
// validation (whose shards have their own) and, through the saved config, in prediction.
// A resumed run keeps the statistics it started with.
void Trainer::resolve_normalization(const std::optional<config::Config>& saved) {
  auto& d = config_.data;
  if (d.normalization != "dataset") return;
  const data::ShardHeader& h = train_data_->header();
  if (!d.channel_mean.empty()) {
    DPUNET_CHECK(static_cast<int64_t>(d.channel_mean.size()) == h.channels,
                 "data.channel_mean: ", d.channel_mean.size(), " values, but ", d.train, " has ", h.channels,
                 " channels");
    // Given on purpose (fixed intensity windows) or carried over from another run's
    // config.yaml: either way the user should see it when the data say otherwise.
    if (context_.is_root() && (!close_to(d.channel_mean, h.channel_mean) || !close_to(d.channel_std, h.channel_std))) {
      logger_.info("normalising with data.channel_mean " + list_text(d.channel_mean) + " and channel_std " +
                   list_text(d.channel_std) + " from the config; the training shards' own are " +
                   list_text(h.channel_mean) + " and " + list_text(h.channel_std));
    }
    return;
  }
  if (saved && !saved->data.channel_mean.empty()) {
    d.channel_mean = saved->data.channel_mean;
    d.channel_std = saved->data.channel_std;
    d.stats_pixel_type = saved->data.stats_pixel_type;
    return;
  }
  d.channel_mean = h.channel_mean;
  d.channel_std = h.channel_std;
  d.stats_pixel_type = data::pixel_type_name(h.pixel_type);
}

// Where the loader continues. The saved position counts samples of one epoch's order,
// which depends on the training shards (their order and sizes) and run.seed; if either
// changed, that order is gone and the run starts the next epoch instead.
data::SamplerState Trainer::continued_position(const checkpoint::LoadedCheckpoint& loaded) {
  const auto& s = loaded.state();
  // With remainder: drop and a larger global batch than the run that wrote the checkpoint
  // (more ranks, a bigger batch), what is left of the epoch may fill no batch: those
  // samples sit out, and the epoch ended at the checkpoint's step. Its end-of-epoch
  // validation is then still to do, as an uninterrupted run would have done at its end.
  const data::DistributedSampler sampler(train_data_->size(), context_.rank(), context_.world_size(),
                                         sampler_options(config_));
  if (!sampler.rank_indices(s.sampler.epoch, s.sampler.position).empty()) return s.sampler;
  logger_.info("the " + std::to_string(train_data_->size() - s.sampler.position) + " samples left of epoch " +
               std::to_string(s.sampler.epoch) + " fill no global batch of " +
               std::to_string(config_.train.batch_size * context_.world_size()) +
               " (data.remainder: drop): that epoch ended at step " + std::to_string(s.step));
  epoch_ended_at_resume_ = true;
  if (config_.validation.every_steps == 0 && val_data_) validation_pending_ = true;
  return data::SamplerState{s.sampler.epoch + 1, 0};
}

data::SamplerState Trainer::resume_position(const checkpoint::LoadedCheckpoint& loaded, const config::Config& saved) {
  const auto& s = loaded.state();
  if (s.sampler.position == 0) return s.sampler;
  std::string changed;
  if (s.dataset_size > 0 && s.dataset_size != train_data_->size()) {
    changed = "the training data (" + std::to_string(s.dataset_size) + " samples then, " +
              std::to_string(train_data_->size()) + " now)";
  } else if (!s.dataset_description.empty() && s.dataset_description != describe_dataset(*train_data_)) {
    changed = "the training data (" + s.dataset_description + " then, " + describe_dataset(*train_data_) + " now)";
  } else if (saved.run.seed != config_.run.seed) {
    changed = "run.seed";
  }
  if (changed.empty()) return continued_position(loaded);
  if (context_.is_root()) {
    logger_.warn(changed + " changed since " + loaded.path() + ": the rest of epoch " +
                 std::to_string(s.sampler.epoch) + " cannot be continued in its order; starting epoch " +
                 std::to_string(s.sampler.epoch + 1));
  }
  return data::SamplerState{s.sampler.epoch + 1, 0};
}

bool Trainer::is_own_checkpoint(const checkpoint::LoadedCheckpoint& loaded) const {
  // The same path first (--resume auto's): a file system's passing error in equivalent()
  // must not take the run's own checkpoint for another's, and set its history aside.
  const std::string own = store_.path_for_step(loaded.state().step);
  if (loaded.path() == own) return true;
  std::error_code ec;
  return std::filesystem::equivalent(loaded.path(), own, ec);
}

void Trainer::prepare_run_directory(const std::optional<checkpoint::LoadedCheckpoint>& loaded) {
  if (context_.is_root()) {
    // The history up to a checkpoint of this run directory's own stays; a checkpoint from
    // elsewhere (another run, or one set aside earlier) starts another timeline here, so
    // the whole history there moves aside, as for a fresh start.
    std::optional<int64_t> keep_until;
    bool validation_pending = false;
    if (loaded && own_checkpoint_) {
      keep_until = loaded->state().step;
      // This run's, not only the file's: a resume that ends the run or an epoch at the
      // checkpoint's step validates it first as well, and may have been killed after it.
      validation_pending = validation_pending_ && val_data_ != nullptr;
    } else if (loaded) {
      logger_.info(loaded->path() + " is not one of " + store_.directory() +
                   "'s own checkpoints: this run directory's earlier history is set aside");
    }
    const std::string config_text = config::to_yaml(config_);
    const std::string moved =
        describe(set_aside_superseded_history(config_.run.dir, keep_until, validation_pending, config_text));
    if (!moved.empty()) logger_.warn(moved);
    if (best_step_ >= 0) store_.restore_best(best_step_);
    write_file_atomically(config_.run.dir + "/config.yaml", config_text);
  }
  logger_.open_metrics();
}

}  // namespace dpunet::train::detail
