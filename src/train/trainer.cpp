// The train loop. Order of events at each step boundary, the same on every rank:
// preemption check (a one-integer vote on the host), validation when due, checkpoint when due,
// log line when due. Collectives are therefore issued in the same order everywhere.
#include "train/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "checkpoint/background_writer.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "checkpoint/weights.h"
#include "common/atomic_file.h"
#include "common/autocast_scope.h"
#include "common/directory_lock.h"
#include "common/error.h"
#include "common/remove_tree.h"
#include "common/text.h"
#include "dist/context.h"
#include "dist/core_share.h"
#include "dist/host_vote.h"
#include "dist/make_communicator.h"
#include "model/finite_weights.h"
#include "train/device_batches.h"
#include "train/loss_scaler.h"
#include "train/preemption.h"
#include "train/rank_agreement.h"
#include "train/run_history.h"
#include "train/run_logger.h"
#include "train/schedule.h"
#include "train/setup.h"
#include "train/trainer_internal.h"
#include "train/validation.h"

namespace dpunet::train {
namespace {

// Said when a collective or vote stalls: a step that is only slow (a large batch on a
// CPU) needs a longer wait, and this is where it is set.
std::string timeout_hint() {
  return "distributed.timeout_s sets this wait, at least " +
         std::to_string(std::chrono::seconds(dist::kStartupTimeout).count()) +
         " s at start-up, for the first step and for a checkpoint's snapshot";
}

dist::CommunicatorOptions communicator_options(const config::Config& config) {
  dist::CommunicatorOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.distributed.timeout_s * 1000));
  options.check_collectives = config.distributed.check_collectives;
  options.timeout_hint = timeout_hint();
  return options;
}

}  // namespace

namespace detail {

Trainer::Trainer(const config::Config& config, dist::Context& context, const TrainOptions& options)
    : config_(config),
      context_(context),
      options_(options),
      device_(context.device()),
      comm_(dist::make_communicator(context, config.distributed.backend, communicator_options(config))),
      stop_vote_(context, std::chrono::milliseconds(static_cast<int64_t>(config.distributed.timeout_s * 1000)),
                 timeout_hint()),
      logger_(config.run.dir, context.rank(), config.logging.progress, config.logging.tensorboard),
      store_(config.run.dir),
      scaler_(config.precision.dtype == "fp16" && context.device().is_cuda()),
      autocast_(config.precision.dtype != "fp32" && context.device().is_cuda()) {
  // Ranks meet here after opening datasets and reading checkpoints at their own pace;
  // the steps' timeout comes back when the constructor returns.
  const dist::LongerTimeout startup(*comm_, dist::kStartupTimeout);
  if (config.precision.dtype == "fp16") autocast_dtype_ = at::kHalf;
  dist::share_cores(context);
  // Ranks started with different configs (an MPMD mpirun, a config file edited while
  // ranks start) would train apart, or issue collectives of other sizes: the first
  // difference is named before anything is read.
  dist::check_same_on_all_ranks(*comm_, config::key_values(config), "resolved config");
  DPUNET_CHECK(config.precision.dtype == "fp32" || device_.is_cuda(), "precision.dtype ", config.precision.dtype,
               " needs a GPU; this rank runs on ", device_.str());

  fail_together(*comm_, [&] {
    train_data_ = open_dataset(config, "data.train", config.data.train);
    check_sync_batch_norm(config, train_data_->header(), context.world_size());
    if (!config.data.val.empty()) val_data_ = open_dataset(config, "data.val", config.data.val);
  });
  check_same_dataset(*comm_, *train_data_, "data.train", config.data.train);
  if (val_data_) {
    check_same_dataset(*comm_, *val_data_, "data.val", config.data.val);
    fail_together(*comm_, [&] {
      check_no_shared_shards(*train_data_, *val_data_, config);
      check_same_class_names(*train_data_, *val_data_, config);
    });
  }
  // Allowed (predict mirrors tiles at image borders alike), but rarely meant: said.
  if (const data::ShardHeader& h = train_data_->header();
      config.augment.patch_size > h.height || config.augment.patch_size > h.width) {
    logger_.info("note: augment.patch_size " + std::to_string(config.augment.patch_size) +
                 " is larger than the training images (" + std::to_string(h.height) + "x" + std::to_string(h.width) +
                 "): their patches are mirror-padded, images and masks alike");
  }
  if (const std::string note = large_sample_note(config, train_data_->header()); !note.empty() && context.is_root()) {
    logger_.warn(note);
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
    // Every rank holds the same checkpoint (checked above), so these fail alike.
    fail_together(*comm_, [&] {
      const auto differences = config::model_differences(*saved, config);
      if (!differences.empty()) {
        std::string list;
        for (const auto& d : differences) list += "\n  " + d;
        DPUNET_FAIL(loaded->path(), ": the checkpoint's model differs from the config's (checkpoint vs config):", list);
      }
      // Another optimizer's state (AdamW's moments for SGD) cannot be carried over.
      DPUNET_CHECK(config.train.steps >= loaded->state().step, "train.steps ", config.train.steps,
                   " ends the run before step ", loaded->state().step, " of ", loaded->path(),
                   ", which it resumes from: give train.steps ", loaded->state().step,
                   " or more (that many finishes the run at its checkpoint)");
      DPUNET_CHECK(saved->optimizer.name == config.optimizer.name, loaded->path(), ": written with optimizer.name ",
                   saved->optimizer.name, ", the config has ", config.optimizer.name,
                   "; to change the optimizer, start a new run from its weights: --init-weights ", loaded->path(),
                   " with another run.dir");
    });
    fail_together(*comm_, [&] { loaded->restore_model(*model_); });  // NaN weights, say
    // A job script passes the same arguments to every requeued run: the run's own
    // checkpoint comes first, and the log says the starting weights were not reread.
    if (!options.init_weights.empty())
      logger_.info("--init-weights " + options.init_weights + " not used: resuming from " + loaded->path());
  } else if (!options.init_weights.empty()) {
    // Every rank reads the file for itself, and usually fails alike on it. A run directory
    // or a best/latest pointer names a checkpoint, as for predict and export.
    std::string source, chosen;
    bool from_checkpoint = false;
    fail_together(*comm_, [&] {
      source = checkpoint::resolve_checkpoint_argument(options.init_weights, &chosen);
      from_checkpoint = checkpoint::has_checkpoint_magic(source);
      if (from_checkpoint) {
        // Another run's checkpoint: its model only, as a new run's start (fine-tuning).
        checkpoint::LoadedCheckpoint(source).restore_model(*model_);
      } else {
        checkpoint::load_state(*model_, checkpoint::read_safetensors(source), source,
                               "--init-weights starts a run of the same model: set its model section (--set "
                               "model.base_channels=..., model.n_classes=...) to the file's.");
      }
    });
    logger_.info(
        "initial weights from " + source + (source != options.init_weights ? " (" + chosen + ")" : "") +
        (from_checkpoint ? " (a training checkpoint: its model; its optimizer state and step are not used)" : ""));
  }
  model_->to(device_);
  if (config.precision.channels_last && device_.is_cuda()) use_channels_last_weights(*model_);
  ddp_ = std::make_unique<dist::DistributedDataParallel>(model_.ptr(), *comm_, ddp_options(config));
  optimizer_ = build_optimizer(config, model_->parameters());
  data::SamplerState start;
  if (loaded) {
    own_checkpoint_ = comm_->broadcast_string(is_own_checkpoint(*loaded) ? "own" : "other", /*root=*/0) == "own";
    resumed_from_elsewhere_ = !own_checkpoint_;
    fail_together(*comm_, [&] { resume(*loaded); });  // an optimizer state that does not fit
    // Every rank read the same file, so every rank lays its buckets out alike.
    if (!loaded->state().bucket_order.empty() && !ddp_->restore_bucket_order(loaded->state().bucket_order)) {
      logger_.info(loaded->path() +
                   ": its gradient bucket layout does not fit this model's parameters; laid out "
                   "afresh (the first step may differ from an uninterrupted run's in the last bits)");
    }
    fail_together(*comm_, [&] { start = resume_position(*loaded, *saved); });
    // train.steps lowered to the checkpoint's step ends the run there, and a run's end is
    // validated, as an uninterrupted run of that length would have done; unless that
    // step's validation ran already (or is pending anyway), by the stopped run's schedule:
    // at an epoch's end where it validated once an epoch (the checkpoint's own position, not
    // `start`, which moves to the next epoch when the data or the seed changed).
    const int64_t every = saved->validation.every_steps;
    const bool validated_there =
        !saved->data.val.empty() && (every > 0 ? step_ % every == 0 : loaded->state().sampler.position == 0);
    if (val_data_ && step_ == config.train.steps && saved->train.steps > step_ && !validated_there &&
        !validation_pending_) {
      validation_pending_ = true;
      ends_at_resume_ = true;
    }
  }
  fail_together(*comm_, [&] {
    resolve_normalization(saved);
    // Statistics given in the config (or a checkpoint's) for another pixel type: found
    // now, not by the loader at the first sample.
    check_statistics_fit(config_, train_data_->header(), "data.train " + config_.data.train);
    if (val_data_) check_statistics_fit(config_, val_data_->header(), "data.val " + config_.data.val);
  });
  // The names either set gives (they agree where both do: checked above).
  if (val_data_) {
    const std::vector<std::string> val_names = data::given_class_names(val_data_->header());
    logger_.set_class_names(val_names.empty() ? data::given_class_names(train_data_->header()) : val_names);
  }
  if (context.is_root()) {
    for (const std::string& note : constant_channel_notes(config_)) logger_.warn(note);
    if (scaler_.enabled() && config_.optimizer.implementation != "fused") {
      logger_.warn("precision.dtype fp16 with optimizer.implementation " + config_.optimizer.implementation +
                   ": whether a step overflowed is read back on the host every step, which waits for the GPU; "
                   "the fused optimizer skips such steps on the GPU");
    }
    if (config_.distributed.wire_dtype == "fp16" && !scaler_.enabled() && context.world_size() > 1) {
      logger_.warn(
          "distributed.wire_dtype fp16 without fp16's loss scaler: an averaged gradient beyond 65504 "
          "becomes inf (the run stops at its next check), and gradients below about 6e-8 x " +
          std::to_string(context.world_size()) +
          " ranks vanish; bf16 on the wire keeps float32's range, or train with precision.dtype fp16");
    }
  }
  if (saved) {
    // A resumed run takes the new config (its normalisation statistics resolved as the
    // checkpoint's); which keys changed belongs in the run's log: a longer run, another
    // learning rate, or another run's config given by mistake.
    std::string changed;
    for (const auto& d : config::differences(*saved, config_)) changed += "\n  " + d;
    if (!changed.empty()) logger_.info("keys changed from the checkpoint's config (checkpoint vs now):" + changed);
    // Scores on another validation set (its shards' contents, not its path: a copy on
    // a job's scratch disk is the same set), crop or normalisation do not compare with
    // the best so far: the validations from here choose the next best (until then the
    // best checkpoint stays the one it was).
    const std::string& val_then = loaded->state().val_dataset_description;
    const bool other_val = !val_then.empty() && val_data_ && val_then != describe_dataset(*val_data_);
    if (best_score_ >= 0 &&
        (other_val || saved->augment.patch_size != config_.augment.patch_size ||
         saved->data.normalization != config_.data.normalization ||
         (config_.data.normalization == "dataset" && (saved->data.channel_mean != config_.data.channel_mean ||
                                                      saved->data.channel_std != config_.data.channel_std)))) {
      logger_.info("the validation set, augment.patch_size or the normalisation changed: the best score so far (" +
                   std::to_string(best_score_) + ") is not compared with the scores from here on");
      best_score_ = -1;
    }
  }
  // Rank 0's file work (a full disk, a folder it may not write): every rank stops with it.
  fail_together(*comm_, [&] { prepare_run_directory(loaded); });
  data::LoaderOptions loading = loader_options(config_, device_.is_cuda());
  // Shards with an ignore label hold unlabelled pixels: patches go where labels are.
  loading.augmentation.sparse_labels = train_data_->header().ignore_label >= 0;
  // A set too small for one global batch, which every rank finds: said once.
  fail_together(*comm_, [&] {
    loader_ = std::make_unique<data::Loader>(
        train_data_,
        data::DistributedSampler(train_data_->size(), context.rank(), context.world_size(), sampler_options(config_)),
        loading, start);
  });
  batches_ = std::make_unique<DeviceBatches>(*loader_, device_,
                                             DeviceBatchOptions{config.precision.channels_last && device_.is_cuda()});
  epoch_ = start.epoch;
  // Until the first step, epoch_ names the checkpoint's step (its pending validation).
  if (loaded && loaded->state().step_epoch >= 0) epoch_ = loaded->state().step_epoch;
  loss_options_ = loss_options(config);
  loss_options_.ignore_label = train_data_->header().ignore_label;
  if (config.loss.global_batch) loss_options_.global_batch = comm_.get();
}

torch::Tensor Trainer::forward(const torch::Tensor& images) {
  AutocastScope autocast(autocast_, autocast_dtype_);
  return model_->forward(images);
}

torch::Tensor Trainer::train_step(int64_t* epoch, bool* epoch_ended) {
  ddp_->zero_grad();
  const int64_t micro_batches = config_.train.accumulation;
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device_));
  for (int64_t micro = 0; micro < micro_batches; ++micro) {
    data::Batch batch = batches_->next();
    if (micro == 0) *epoch = batch.epoch;
    // Any micro-batch may end an epoch, not only the last of the step.
    if (batch.state_after.epoch > batch.epoch) *epoch_ended = true;
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
    // The next micro-batch's copy, now that this one's work is queued.
    if (micro + 1 < micro_batches) batches_->prefetch();
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
  const torch::Tensor nonfinite = torch::isfinite(loss_sum).logical_not().to(torch::kFloat).reshape({1});
  nonfinite_steps_ = nonfinite_steps_.defined() ? nonfinite_steps_ + nonfinite : nonfinite;
  // The next step's first batch, now that this step's work is queued; none after the last
  // step, whose read would be wasted and could fail a finished run on a bad sample.
  const bool last_step = step_ >= config_.train.steps || (options_.stop_at_step > 0 && step_ >= options_.stop_at_step);
  if (!last_step) batches_->prefetch();
  return loss_sum;
}

void Trainer::check_loss_and_weights_finite() {
  if (!nonfinite_steps_.defined()) return;  // no step since the start
  // The weights too: a gradient that overflowed while its loss was finite (AdamW's
  // inf / inf, or inf times a clipping coefficient of 0) spoils them after the step
  // whose loss was checked, and bf16 and fp32 have no loss scaler to skip such a step.
  torch::Tensor counts = torch::cat({nonfinite_steps_, model::count_non_finite_tensors(*model_).reshape({1})});
  comm_->all_reduce(counts, dist::ReduceOp::kSum);
  const torch::Tensor host = counts.cpu();
  const auto bad = static_cast<int64_t>(host[0].item<float>());
  const auto bad_weights = static_cast<int64_t>(host[1].item<float>());
  nonfinite_steps_.zero_();
  if (bad > 0) fail_non_finite_loss(std::to_string(bad) + " rank-step(s) of " + step_range(checked_step_ + 1, step_));
  if (bad_weights > 0) {
    // Every rank knows it from the same all-reduced count; each lists its own tensors.
    DPUNET_FAIL_ON_EVERY_RANK(false, "the weights hold NaN or infinite values after step ", step_,
                              "'s update, though every loss up to it was finite (a gradient overflowed), in:",
                              model::non_finite_tensors(*model_),
                              "\nThe run stops without validating or saving them. Checkpoints written before are "
                              "unaffected: resume from one (--resume PATH) with a lower optimizer.lr, or after "
                              "checking the data (dpunet data inspect --verify)");
  }
  checked_step_ = step_;
}

void Trainer::fail_non_finite_loss(const std::string& how_many) const {
  // Every rank knows it from the same all-reduced value.
  // fp16's scaler skips such steps, but only gradients that overflow recover with a
  // smaller scale; a loss that overflows in the forward pass does not.
  const std::string consequence =
      scaler_.enabled() ? "; fp16 skipped those steps, but a loss that overflows in the forward pass does not recover "
                          "by loss scaling (bf16 has fp32's range), so the run stops"
                        : "; the weights it updated are not usable, so the run stops without validating or saving them";
  DPUNET_FAIL_ON_EVERY_RANK(false, "the training loss was not finite (NaN or inf) in ", how_many, consequence,
                            ". Checkpoints written before are unaffected: resume from one (--resume PATH) with a "
                            "lower optimizer.lr, an optimizer.grad_clip, or after checking the data (dpunet data "
                            "inspect --verify)");
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
  const ValidationResult result = validate([this](const torch::Tensor& x) { return forward(x); }, *val_data_, o,
                                           loss_options_, device_, context_.rank(), context_.world_size(), *comm_);
  const ConfusionCounts& counts = result.counts;
  model_->train();
  ValRecord record;
  record.step = step_;
  record.epoch = epoch_;
  record.loss = result.loss;
  record.elapsed_s = elapsed_s();
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

void Trainer::write_resumed_copy() {
  // This run directory's earlier history was set aside: until the first periodic
  // checkpoint, a crash (a node lost, a kill) would leave --resume auto nothing to
  // continue from but a fresh start. The resumed checkpoint goes in first, as read.
  save(/*best=*/false, /*logged_now=*/false);
  wait_for_checkpoint_write("the resumed checkpoint's copy");
  logger_.info("step " + std::to_string(step_) + "'s checkpoint written into " + store_.directory() +
               ": --resume auto continues from it until the next one");
}

int Trainer::run() {
  model_->train();
  // With accumulation an epoch need not end on a step boundary: say so rather than round.
  const int64_t batches = loader_->batches_per_epoch(), accumulation = config_.train.accumulation;
  const std::string per_epoch =
      accumulation == 1
          ? counted(batches, "step") + " per epoch"
          : counted(batches, "batch", "batches") + " per epoch (" + std::to_string(batches / accumulation) +
                (batches % accumulation == 0 ? "" : "+") + " steps of " + std::to_string(accumulation) + ")";
  logger_.info("training " + counted(config_.train.steps, "step") + " on " + counted(context_.world_size(), "rank") +
               ", " + device_.str() + ", " + counted(train_data_->size(), "sample") + ", " + per_epoch + "; run dir " +
               config_.run.dir);
  // The validation and checkpoint keys that only a validation set gives meaning to.
  if (!val_data_) {
    logger_.info(std::string("no data.val: no validation") +
                 (config_.checkpoint.keep_best ? ", and no best checkpoint (checkpoint.keep_best)" : ""));
  }
  loss_window_ = torch::full({}, restored_window_sum_, torch::TensorOptions().device(device_));
  // Run again with the same --stop-at-step: it was reached, a further step would pass it
  // (a validation left pending there is still done, as a run that went on would have).
  const bool at_stop_step = options_.stop_at_step > 0 && step_ >= options_.stop_at_step && step_ < config_.train.steps;
  if (at_stop_step) {
    logger_.info("already at step " + std::to_string(step_) + ", not before --stop-at-step " +
                 std::to_string(options_.stop_at_step) + ": nothing to train (a later --stop-at-step continues)");
  }
  if (step_ >= config_.train.steps && !(validation_pending_ && val_data_)) {
    logger_.info("the run is complete at step " + std::to_string(step_) + " (train.steps " +
                 std::to_string(config_.train.steps) + "): nothing to do; raise train.steps to train further");
  }
  run_start_ = window_start_ = Clock::now();
  window_wait_start_ = loader_->wait_seconds();
  // Start-up's longer timeout lasts until the first step is done and voted on: the
  // ranks' first batches come off cold shards, and cuDNN's autotuning times the first
  // step's convolutions, each at its own pace.
  std::optional<dist::LongerTimeout<dist::Communicator>> first_step(std::in_place, *comm_, dist::kStartupTimeout);
  std::optional<dist::LongerTimeout<dist::HostVote>> first_vote(std::in_place, stop_vote_, dist::kStartupTimeout);
  if (validation_pending_ && val_data_) {
    // A stop asked for during start-up goes first: the validation would use the grace
    // time, and it stays pending in the checkpoint for the next run.
    if (agree_to_stop()) {
      // Written here as it was read, validation still pending: a checkpoint resumed from
      // another directory is not in this one, whose history was just set aside, so
      // --resume auto would otherwise start afresh.
      save(/*best=*/false, /*logged_now=*/false);
      wait_for_checkpoint_write("its checkpoint");  // before any rank exits (the loop's stop says why)
      logger_.info("stopped by a signal before the first step; checkpoint of step " + std::to_string(step_) +
                   " written, exit code " + std::to_string(kPreemptedExitCode) + " (resume with --resume auto)");
      return kPreemptedExitCode;
    }
    const std::string why = ends_at_resume_          ? "train.steps ends the run there"
                            : epoch_ended_at_resume_ ? "its epoch ended there (above)"
                                                     : "the stop that wrote its checkpoint skipped the validation";
    logger_.info("validating step " + std::to_string(step_) + " first: " + why);
    bool improved = false;
    validate_now(&improved);
    validation_pending_ = false;
    // The step's checkpoint again, with the validation's outcome and the restored window;
    // on disk before training goes on: the validation's metrics row is written already,
    // and a kill before the checkpoint would have the next run validate the step again.
    save(improved && config_.checkpoint.keep_best, /*logged_now=*/false);
    wait_for_checkpoint_write();
  } else if (resumed_from_elsewhere_) {
    write_resumed_copy();
  }
  if (at_stop_step) return 0;
  while (step_ < config_.train.steps) {
    writer_.poll();  // a failed checkpoint write stops the run now, not at the next save
    int64_t epoch = epoch_;
    bool epoch_ended = false;
    loss_window_ += train_step(&epoch, &epoch_ended);
    ++window_steps_;
    ++window_steps_timed_;
    epoch_ = epoch;  // the epoch this step began in, which its log and validation name
    const bool last = step_ == config_.train.steps;
    const bool stop_requested = options_.stop_at_step > 0 && step_ >= options_.stop_at_step;
    const bool preempted = agree_to_stop();
    if (first_step) {
      // The pace of the run is taken from here: the first step's own time (cuDNN's
      // autotuning, cold shards) says little about the rest.
      paced_from_step_ = step_;
      paced_from_ = Clock::now();
    }
    first_step.reset();
    first_vote.reset();
    bool improved = false;
    // A stop request skips validation: after SIGTERM only the scheduler's grace time is
    // left, and it belongs to the checkpoint, which records the validation as pending for
    // the resumed run to do first. The last step's is not skipped: the run ends there.
    const bool due = validation_due(epoch_ended, last);
    const bool periodic_checkpoint =
        last || preempted || stop_requested ||
        (config_.checkpoint.every_steps > 0 && step_ % config_.checkpoint.every_steps == 0) ||
        (config_.checkpoint.every_epoch && epoch_ended);
    if (due || periodic_checkpoint) check_loss_and_weights_finite();
    if (due && (!preempted || last)) validate_now(&improved);
    validation_pending_ = due && preempted && !last;
    const bool new_best = improved && config_.checkpoint.keep_best;
    // On the logging cadence only, a stop included: the loss not yet logged goes into the
    // checkpoint, and the resumed run logs the same lines as one that never stopped. The
    // line first: a checkpoint committed before it, and a kill between the two, would
    // resume past a line never written.
    const bool log_now = step_ % config_.logging.every_steps == 0 || last;
    if (log_now) log_progress();
    if (periodic_checkpoint || new_best) save(new_best, log_now);
    // The checkpoint is on disk before we say so, and before any rank exits: a launcher
    // that ends the job at its first rank's exit code 75 (srun --kill-on-bad-exit) would
    // otherwise stop rank 0 in the middle of writing it.
    if (preempted || stop_requested) wait_for_checkpoint_write("its checkpoint");
    if (preempted && !last) {
      logger_.info("stopped by a signal at step " + std::to_string(step_) + "; checkpoint written, exit code " +
                   std::to_string(kPreemptedExitCode) + " (resume with --resume auto)");
      return kPreemptedExitCode;
    }
    if (preempted) logger_.info("stop signal at the last step, " + std::to_string(step_) + ": the run is complete");
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

}  // namespace detail

int run_training(const config::Config& config, dist::Context& context, const TrainOptions& options) {
  // First: a signal while the run starts up (reading checkpoints can take minutes) must
  // stop it at its first step with a checkpoint, not kill it.
  install_preemption_handlers();
  std::optional<DirectoryLock> lock;
  bool created = false;  // this start made the run directory
  if (context.is_root()) {
    std::error_code ec;
    created = !std::filesystem::exists(config.run.dir, ec);
    std::filesystem::create_directories(config.run.dir, ec);
    DPUNET_CHECK(!ec, "run.dir ", config.run.dir, ": cannot create the run directory: ", ec.message());
    // Its entry durable before checkpoints go into it (the store syncs checkpoints/ into
    // it; a power loss must not take the run directory, and them, away).
    if (created) {
      std::filesystem::path run = std::filesystem::path(config.run.dir).lexically_normal();
      if (run.filename().empty()) run = run.parent_path();  // "runs/exp/" names runs/exp
      const std::filesystem::path parent = run.parent_path();
      sync_directory(parent.empty() ? "." : parent.string());
    }
    lock.emplace(config.run.dir, "run.dir", "training run");  // before anything in it changes
  }
  if (context.device().is_cuda()) configure_gpu_numerics(config);
  // Other ranks never write into the run directory, so they need not wait for it.
  std::optional<detail::Trainer> started;
  try {
    started.emplace(config, context, options);
  } catch (...) {
    // A start that failed (a mistyped data path) leaves no run directory of its own
    // behind: one holding only its lock file would pass for a run.
    if (created) {
      std::error_code ec;
      bool only_lock = true;
      for (const auto& entry : std::filesystem::directory_iterator(config.run.dir, ec)) {
        only_lock = only_lock && entry.path().filename() == ".lock";
      }
      if (!ec && only_lock) remove_tree(config.run.dir);  // the lock held until it is gone
      lock.reset();
    }
    throw;
  }
  detail::Trainer& trainer = *started;
  // Only now that it has started: a start that fails (a mistyped data path) leaves a
  // finished run finished, for the job scripts that look for DONE.
  if (context.is_root()) {
    std::error_code ec;
    std::filesystem::remove(config.run.dir + "/DONE", ec);  // this run has steps to do
  }
  return trainer.run();
}

}  // namespace dpunet::train
