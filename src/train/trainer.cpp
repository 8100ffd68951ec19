// The train loop. Order of events at each step boundary, the same on every rank:
// preemption check (a one-integer vote on the host), validation when due, checkpoint when due,
// log line when due. Collectives are therefore issued in the same order everywhere.
#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "checkpoint/background_writer.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "checkpoint/weights.h"
#include "common/atomic_file.h"
#include "common/autocast_scope.h"
#include "common/error.h"
#include "dist/context.h"
#include "dist/host_vote.h"
#include "dist/make_communicator.h"
#include "train/device_batches.h"
#include "train/device_memory.h"
#include "train/loss_scaler.h"
#include "train/preemption.h"
#include "train/rank_agreement.h"
#include "train/run_directory_lock.h"
#include "train/run_history.h"
#include "train/run_logger.h"
#include "train/schedule.h"
#include "train/setup.h"
#include "train/validation.h"

namespace dpunet::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

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

class Trainer {
 public:
  Trainer(const config::Config& config, dist::Context& context, const TrainOptions& options);
  int run();

 private:
  void resume(const checkpoint::LoadedCheckpoint& loaded);
  void resolve_normalization(const std::optional<config::Config>& saved);
  data::SamplerState resume_position(const checkpoint::LoadedCheckpoint& loaded, const config::Config& saved);
  void prepare_run_directory(const std::optional<checkpoint::LoadedCheckpoint>& loaded);
  torch::Tensor forward(const torch::Tensor& images);
  torch::Tensor train_step(int64_t* epoch_after);
  bool agree_to_stop();
  bool validation_due(bool epoch_ended, bool last) const;
  void validate_now(bool* improved);
  void save(bool best);
  // Starts a stretch that logged throughput leaves out (validation, checkpoint snapshot).
  Clock::time_point pause_window();
  void log_progress(const torch::Tensor& loss_sum, int64_t steps);

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
  double best_score_ = -1;
  int64_t best_step_ = -1;           // of the checkpoint marked best
  bool validation_pending_ = false;  // see checkpoint::TrainingState
  // Writes checkpoints while training goes on; declared last, so it finishes its write
  // before the store and everything else it might touch are gone.
  checkpoint::BackgroundWriter writer_;
  // Throughput bookkeeping between log lines.
  Clock::time_point run_start_, window_start_;
  double window_wait_start_ = 0;
  double window_paused_ = 0;  // validation and checkpoint snapshots: not training time
  int64_t window_steps_ = 0;
};

std::optional<checkpoint::LoadedCheckpoint> find_resume_point(const TrainOptions& options,
                                                              const checkpoint::CheckpointStore& store,
                                                              const dist::Context& context, dist::Communicator& comm,
                                                              RunLogger& logger) {
  if (options.resume == "none") return std::nullopt;
  if (options.resume != "auto") return checkpoint::LoadedCheckpoint(options.resume);
  // Rank 0 picks and the others follow: ranks that looked for themselves could see the
  // run directory differently (a network filesystem's cache) and resume at different steps.
  std::string path;
  if (context.is_root()) {
    path = store.latest_valid([&](const std::string& m) { logger.warn(m); }).value_or("");
  }
  path = comm.broadcast_string(path, /*root=*/0);
  if (path.empty()) {
    logger.info("resume auto: no checkpoint in " + store.directory() + ", starting fresh");
    return std::nullopt;
  }
  return checkpoint::LoadedCheckpoint(path);
}

Trainer::Trainer(const config::Config& config, dist::Context& context, const TrainOptions& options)
    : config_(config),
      context_(context),
      options_(options),
      device_(context.device()),
      comm_(dist::make_communicator(context, config.distributed.backend,
                                    dist::CommunicatorOptions{std::chrono::milliseconds(
                                        static_cast<int64_t>(config.distributed.timeout_s * 1000))})),
      stop_vote_(context, std::chrono::milliseconds(static_cast<int64_t>(config.distributed.timeout_s * 1000))),
      logger_(config.run.dir, context.rank(), config.logging.progress),
      store_(config.run.dir),
      scaler_(config.precision.dtype == "fp16" && context.device().is_cuda()),
      autocast_(config.precision.dtype != "fp32" && context.device().is_cuda()) {
  if (config.precision.dtype == "fp16") autocast_dtype_ = at::kHalf;
  // Ranks on one machine share its cores unless the launcher already said how many.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    torch::set_num_threads(std::max(1, cores / std::max(1, context.local_size())));
  }
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(config.precision.cudnn_benchmark);
  DPUNET_CHECK(config.precision.dtype == "fp32" || device_.is_cuda(), "precision.dtype ", config.precision.dtype,
               " needs a GPU; this rank runs on ", device_.str());

  train_data_ = std::make_shared<const data::Dataset>(config.data.train);
  check_data_fits_model(config, train_data_->header(), config.data.train);
  check_same_dataset(*comm_, *train_data_, "data.train", config.data.train);
  if (!config.data.val.empty()) {
    val_data_ = std::make_shared<const data::Dataset>(config.data.val);
    check_data_fits_model(config, val_data_->header(), config.data.val);
    check_same_dataset(*comm_, *val_data_, "data.val", config.data.val);
  }

  torch::manual_seed(config.run.seed);
  model_ = build_model(config, comm_);
  std::optional<checkpoint::LoadedCheckpoint> loaded = find_resume_point(options, store_, context, *comm_, logger_);
  check_same_checkpoint(*comm_, loaded);
  std::optional<config::Config> saved;  // the config the checkpoint was written under
  if (loaded) {
    std::vector<std::string> skipped;
    saved = config::parse_saved_config(loaded->state().config_yaml, loaded->path() + " (saved config)", &skipped);
    for (const std::string& key : skipped)
      logger_.info(loaded->path() + ": skipping saved key " + key + " (unknown here)");
    if (config.loss.global_batch && context.world_size() > 1 &&
        loaded->state().config_yaml.find("global_batch") == std::string::npos) {
      logger_.info(loaded->path() +
                   " was written before loss.global_batch: from here on the loss is the global batch's, not each "
                   "rank's (--set loss.global_batch=false keeps the old objective)");
    }
    const auto differences = config::model_differences(*saved, config);
    if (!differences.empty()) {
      std::string list;
      for (const auto& d : differences) list += "\n  " + d;
      DPUNET_FAIL(loaded->path(), ": the checkpoint's model differs from the config's:", list);
    }
    // Another optimizer's state (AdamW's moments for SGD) cannot be carried over.
    DPUNET_CHECK(saved->optimizer.name == config.optimizer.name, loaded->path(), ": written with optimizer.name ",
                 saved->optimizer.name, ", the config has ", config.optimizer.name,
                 "; to change the optimizer, start a new run from its weights (dpunet export, then --init-weights)");
    loaded->restore_model(*model_);
    // A job script passes the same arguments to every requeued run: the run's own
    // checkpoint comes first, and the log says the starting weights were not reread.
    if (!options.init_weights.empty())
      logger_.info("--init-weights " + options.init_weights + " not used: resuming from " + loaded->path());
  } else if (!options.init_weights.empty()) {
    checkpoint::load_state(*model_, checkpoint::read_safetensors(options.init_weights), options.init_weights);
    logger_.info("initial weights from " + options.init_weights);
  }
  model_->to(device_);
  if (config.precision.channels_last && device_.is_cuda()) use_channels_last_weights(*model_);
  ddp_ = std::make_unique<dist::DistributedDataParallel>(model_.ptr(), *comm_, ddp_options(config));
  optimizer_ = build_optimizer(config, model_->parameters());
  data::SamplerState start;
  if (loaded) {
    resume(*loaded);
    start = resume_position(*loaded, *saved);
  }
  resolve_normalization(saved);
  if (val_data_) check_statistics_fit(config_, val_data_->header(), "data.val " + config_.data.val);
  if (context.is_root()) {
    for (const std::string& note : constant_channel_notes(config_)) logger_.warn(note);
  }
  if (saved) {
    // A resumed run takes the new config (its normalisation statistics resolved as the
    // checkpoint's); which keys changed belongs in the run's log: a longer run, another
    // learning rate, or another run's config given by mistake.
    std::string changed;
    for (const auto& d : config::differences(*saved, config_)) changed += "\n  " + d;
    if (!changed.empty()) logger_.info("keys changed from the checkpoint's config:" + changed);
  }
  prepare_run_directory(loaded);
  loader_ = std::make_unique<data::Loader>(
      train_data_,
      data::DistributedSampler(train_data_->size(), context.rank(), context.world_size(), sampler_options(config_)),
      loader_options(config_, device_.is_cuda()), start);
  batches_ = std::make_unique<DeviceBatches>(*loader_, device_, DeviceBatchOptions{config.precision.channels_last});
  epoch_ = start.epoch;
  loss_options_ = loss_options(config);
  if (config.loss.global_batch) loss_options_.global_batch = comm_.get();
}

void Trainer::resume(const checkpoint::LoadedCheckpoint& loaded) {
  loaded.restore_optimizer(*optimizer_);
  const auto& s = loaded.state();
  step_ = s.step;
  best_score_ = s.best_score;
  best_step_ = s.best_step;
  validation_pending_ = s.validation_pending;
  if (s.score_version < checkpoint::kScoreVersion && best_score_ >= 0) {
    // Scores of then and now differ where a class is absent: compare only new ones.
    logger_.info(loaded.path() + " scored absent classes as Dice 1: its best score " + std::to_string(best_score_) +
                 " is not compared with the scores from here on");
    best_score_ = -1;
  }
  scaler_.load(LossScalerState{s.loss_scale, s.loss_scale_clean_steps});
  if (s.rng_cpu.defined()) {  // see save()
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(s.rng_cpu);
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
// which depends on the number of training samples and run.seed; if either changed, that
// order is gone and the run starts the next epoch instead.
data::SamplerState Trainer::resume_position(const checkpoint::LoadedCheckpoint& loaded, const config::Config& saved) {
  const auto& s = loaded.state();
  if (s.sampler.position == 0) return s.sampler;
  std::string changed;
  if (s.dataset_size > 0 && s.dataset_size != train_data_->size()) {
    changed = "the training data (" + std::to_string(s.dataset_size) + " samples then, " +
              std::to_string(train_data_->size()) + " now)";
  } else if (saved.run.seed != config_.run.seed) {
    changed = "run.seed";
  }
  if (changed.empty()) return s.sampler;
  if (context_.is_root()) {
    logger_.warn(changed + " changed since " + loaded.path() + ": the rest of epoch " +
                 std::to_string(s.sampler.epoch) + " cannot be continued in its order; starting epoch " +
                 std::to_string(s.sampler.epoch + 1));
  }
  return data::SamplerState{s.sampler.epoch + 1, 0};
}

void Trainer::prepare_run_directory(const std::optional<checkpoint::LoadedCheckpoint>& loaded) {
  if (context_.is_root()) {
    const std::string moved = describe(set_aside_superseded_history(
        config_.run.dir, loaded ? std::optional<int64_t>(loaded->state().step) : std::nullopt));
    if (!moved.empty()) logger_.warn(moved);
    if (loaded && loaded->state().best_step >= 0) store_.restore_best(loaded->state().best_step);
    write_file_atomically(config_.run.dir + "/config.yaml", config::to_yaml(config_));
  }
  logger_.open_metrics();
}

torch::Tensor Trainer::forward(const torch::Tensor& images) {
  AutocastScope autocast(autocast_, autocast_dtype_);
  return model_->forward(images);
}

torch::Tensor Trainer::train_step(int64_t* epoch_after) {
  ddp_->zero_grad();
  const int64_t micro_batches = config_.train.accumulation;
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device_));
  for (int64_t micro = 0; micro < micro_batches; ++micro) {
    data::Batch batch = batches_->next();
    *epoch_after = batch.state_after.epoch;
    const torch::Tensor& images = batch.images;
    torch::Tensor target = batch.masks;
    // Micro-batches before the last accumulate locally; the last one's backward reduces.
    std::optional<dist::DistributedDataParallel::NoSync> local;
    if (micro + 1 < micro_batches) local.emplace(*ddp_);
    const torch::Tensor logits = forward(images);
    if (config_.model.padding == "valid") target = centre_crop_masks(target, logits.size(2));
    const torch::Tensor loss = segmentation_loss(logits, target, loss_options_) / static_cast<double>(micro_batches);
    scaler_.scale(loss).backward();
    loss_sum += loss.detach();
  }
  ddp_->synchronize();
  set_learning_rate(*optimizer_, learning_rate(config_.schedule, config_.optimizer.lr, step_, config_.train.steps));
  torch::Tensor found_inf;  // fp16: set when a gradient holds inf/NaN, on the device
  if (scaler_.enabled()) {
    std::vector<torch::Tensor> gradients;
    for (const auto& p : model_->parameters()) gradients.push_back(p.grad());
    // Every rank has the same gradients, so every rank skips the same steps.
    found_inf = scaler_.unscale(gradients);
  }
  // A skipped step's gradients may be clipped to NaN: they are not used.
  if (config_.optimizer.grad_clip > 0) clip_gradient_norm(model_->parameters(), config_.optimizer.grad_clip);
  if (found_inf.defined()) {
    step_unless_found_inf(*optimizer_, found_inf);
    scaler_.update(found_inf);
  } else {
    optimizer_->step();
  }
  ++step_;
  return loss_sum;
}

bool Trainer::agree_to_stop() {
  // Any rank's signal stops all of them at the same step. Voted on the host: a device
  // all-reduce read back here would make every GPU step wait for the CPU.
  return stop_vote_.any(preemption_requested());
}

bool Trainer::validation_due(bool epoch_ended, bool last) const {
  if (!val_data_) return false;
  const int64_t every = config_.validation.every_steps;
  return last || (every > 0 ? step_ % every == 0 : epoch_ended);
}

void Trainer::validate_now(bool* improved) {
  const Clock::time_point paused = pause_window();
  ValidationOptions o;
  o.batch_size = config_.validation.batch_size;
  o.patch_size = config_.augment.patch_size;
  o.normalization = normalizer(config_);
  o.n_classes = config_.model.n_classes;
  o.valid_padding = config_.model.padding == "valid";
  model_->eval();
  const ConfusionCounts counts = validate([this](const torch::Tensor& x) { return forward(x); }, *val_data_, o,
                                          loss_options_, device_, context_.rank(), context_.world_size(), *comm_);
  model_->train();
  ValRecord record;
  record.step = step_;
  record.epoch = epoch_;
  record.loss = counts.mean_loss();
  record.dice = counts.dice();
  record.iou = counts.iou();
  record.mean_dice = counts.mean_foreground_dice();
  record.foreground_dice = counts.foreground_dice();
  *improved = record.mean_dice > best_score_;
  if (*improved) best_score_ = record.mean_dice;
  record.best = *improved;
  logger_.validation(record);
  window_paused_ += seconds_since(paused);
}

Clock::time_point Trainer::pause_window() {
  // The steps queued on the GPU before the pause are training time: let them finish first.
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  return Clock::now();
}

void Trainer::save(bool best) {
  if (!context_.is_root()) return;
  const Clock::time_point paused = pause_window();
  checkpoint::TrainingState state;
  state.step = step_;
  state.sampler = batches_->state();
  state.dataset_size = train_data_->size();
  state.world_size = context_.world_size();
  state.config_yaml = config::to_yaml(config_);
  const LossScalerState scaler = scaler_.state();  // read back from the device
  state.loss_scale = scaler.scale;
  state.loss_scale_clean_steps = scaler.clean_steps;
  if (best) best_step_ = step_;
  state.best_score = best_score_;
  state.best_step = best_step_;
  state.validation_pending = validation_pending_;
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

void Trainer::log_progress(const torch::Tensor& loss_sum, int64_t steps) {
  // One all-reduce every log interval: the loss shown is the mean over all ranks.
  torch::Tensor loss = loss_sum.detach().to(torch::kFloat).reshape({1}).clone();
  comm_->all_reduce(loss, dist::ReduceOp::kAvg);
  const double seconds = std::max(1e-9, seconds_since(window_start_) - window_paused_);
  const double waited = loader_->wait_seconds() - window_wait_start_;
  TrainRecord r;
  r.step = step_;
  r.total_steps = config_.train.steps;
  r.epoch = epoch_;
  r.loss = loss.item<double>() / static_cast<double>(std::max<int64_t>(1, steps));
  r.lr = learning_rate(config_.schedule, config_.optimizer.lr, step_ - 1, config_.train.steps);
  r.samples_per_s =
      static_cast<double>(steps * config_.train.accumulation * config_.train.batch_size * context_.world_size()) /
      seconds;
  r.data_wait_share = seconds > 0 ? waited / seconds : 0;
  r.step_ms = 1000.0 * seconds / static_cast<double>(std::max<int64_t>(1, steps));
  r.gpu_memory_gb = peak_gpu_memory_gib(device_);
  r.elapsed_s = seconds_since(run_start_);
  logger_.train(r);
  window_start_ = Clock::now();
  window_wait_start_ = loader_->wait_seconds();
  window_paused_ = 0;
}

int Trainer::run() {
  model_->train();
  logger_.info("training " + std::to_string(config_.train.steps) + " steps on " +
               std::to_string(context_.world_size()) + " rank(s), " + device_.str() + ", " +
               std::to_string(train_data_->size()) + " samples, " +
               std::to_string(loader_->batches_per_epoch() / config_.train.accumulation) +
               " steps per epoch; run dir " + config_.run.dir);
  if (options_.stop_at_step > 0 && step_ >= options_.stop_at_step && step_ < config_.train.steps) {
    // Run again with the same --stop-at-step: it was reached, a further step would pass it.
    logger_.info("already at step " + std::to_string(step_) + ", not before --stop-at-step " +
                 std::to_string(options_.stop_at_step) + ": nothing to do (a later --stop-at-step continues)");
    return 0;
  }
  run_start_ = window_start_ = Clock::now();
  window_wait_start_ = loader_->wait_seconds();
  if (validation_pending_ && val_data_) {
    // A stop asked for during start-up goes first: the validation would use the grace
    // time, and it stays pending in the checkpoint for the next run.
    if (agree_to_stop()) {
      logger_.info("stopped by a signal before the first step; the checkpoint at step " + std::to_string(step_) +
                   " stands (resume with --resume auto)");
      return kPreemptedExitCode;
    }
    logger_.info("validating step " + std::to_string(step_) + " first: the stop that wrote " +
                 "its checkpoint skipped the validation");
    bool improved = false;
    validate_now(&improved);
    validation_pending_ = false;
    save(improved && config_.checkpoint.keep_best);  // step's checkpoint again, with the validation's outcome
  }
  torch::Tensor loss_window = torch::zeros({}, torch::TensorOptions().device(device_));
  while (step_ < config_.train.steps) {
    writer_.poll();  // a failed checkpoint write stops the run now, not at the next save
    int64_t epoch_after = epoch_;
    loss_window += train_step(&epoch_after);
    ++window_steps_;
    const bool epoch_ended = epoch_after > epoch_;
    epoch_ = epoch_after;
    const bool last = step_ == config_.train.steps;
    const bool stop_requested = options_.stop_at_step > 0 && step_ >= options_.stop_at_step;
    const bool preempted = agree_to_stop();
    bool improved = false;
    // A stop request skips validation: after SIGTERM only the scheduler's grace time is
    // left, and it belongs to the checkpoint, which records the validation as pending for
    // the resumed run to do first. The last step's is not skipped: the run ends there.
    const bool due = validation_due(epoch_ended, last);
    if (due && (!preempted || last)) validate_now(&improved);
    validation_pending_ = due && preempted && !last;
    const bool checkpoint_due = last || preempted || stop_requested || improved ||
                                (config_.checkpoint.every_steps > 0 && step_ % config_.checkpoint.every_steps == 0) ||
                                (config_.checkpoint.every_epoch && epoch_ended);
    if (checkpoint_due) save(improved && config_.checkpoint.keep_best);
    if (step_ % config_.logging.every_steps == 0 || last || preempted || stop_requested) {
      log_progress(loss_window, window_steps_);
      loss_window.zero_();
      window_steps_ = 0;
    }
    if (preempted || stop_requested) writer_.wait();  // the checkpoint is on disk before we say so
    if (preempted) {
      logger_.info("stopped by a signal at step " + std::to_string(step_) + "; checkpoint written, exit code " +
                   std::to_string(kPreemptedExitCode) + " (resume with --resume auto)");
      return kPreemptedExitCode;
    }
    if (stop_requested && !last) {
      logger_.info("stopped at step " + std::to_string(step_) + " as asked; resume with --resume auto");
      return 0;
    }
  }
  writer_.wait();
  // The marker job scripts look for: this run has done all its steps.
  if (context_.is_root()) write_file_atomically(config_.run.dir + "/DONE", std::to_string(step_) + "\n");
  logger_.info("done: " + std::to_string(step_) + " steps; checkpoints in " + store_.directory());
  return 0;
}

}  // namespace

int run_training(const config::Config& config, dist::Context& context, const TrainOptions& options) {
  // First: a signal while the run starts up (reading checkpoints can take minutes) must
  // stop it at its first step with a checkpoint, not kill it.
  install_preemption_handlers();
  std::optional<RunDirectoryLock> lock;
  if (context.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(config.run.dir, ec);
    DPUNET_CHECK(!ec, "run.dir ", config.run.dir, ": cannot create the run directory: ", ec.message());
    lock.emplace(config.run.dir);                           // before anything in it changes
    std::filesystem::remove(config.run.dir + "/DONE", ec);  // this run has steps to do
  }
  // Other ranks never write into the run directory, so they need not wait for it.
  Trainer trainer(config, context, options);
  return trainer.run();
}

}  // namespace dpunet::train
