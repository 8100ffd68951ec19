// `dpunet bench train`: the training step on synthetic batches already on the device, or
// (--data) on batches through the training loader. Throughput (steps/s, samples/s over
// all ranks), a step-time breakdown (data wait with --data, forward, backward, exposed
// all-reduce, optimizer; measured in a second pass that waits for each phase's work,
// each phase's slowest rank), peak memory, model FLOP utilisation against the GPU's
// bf16 peak (known GPUs) or a given one, with activation
// checkpointing off and on; on GPUs also the largest batch that fits. Runs under mpirun
// for several ranks.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/bench_loader.h"
#include "app/bench_timing.h"
#include "app/checkpoint_selection.h"
#include "app/cli_checks.h"
#include "app/memory_probe.h"
#include "app/profiler_trace.h"
#include "common/autocast_scope.h"
#include "common/build_info.h"
#include "common/error.h"
#include "common/gpu_peaks.h"
#include "common/largest_batch_search.h"
#include "dist/context.h"
#include "dist/cuda_device.h"
#include "dist/ddp.h"
#include "dist/make_communicator.h"
#include "model/kernel_usage.h"
#include "model/unet.h"
#include "model/unet_flops.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/setup.h"

namespace dpunet::app {
namespace {

struct BenchTrainArgs {
  int64_t size = 128, batch = 4, steps = 10, warmup = 3, base_channels = 64, depth = 4, n_classes = 3;
  int64_t n_channels = 1;  // with --data, the shards' (and their classes)
  std::string precision = "fp32", device = "auto", padding = "same", checkpointing = "both";
  std::string optimizer = "fused";  // optimizer.implementation
  std::string norm = "batch";       // model.norm
  bool channels_last = true;        // NHWC weights and activations on CUDA, as training does
  bool fuse_norm_relu = true;       // fused BatchNorm+ReLU kernels where they apply
  bool pool_concat_kernels = true;  // max pooling and concatenation kernels where they apply
  CheckpointSelection selection;    // what the checkpointed variant recomputes
  double peak_tflops = 0;           // the device's dense peak for `precision`; 0: the GPU's bf16 peak if known
  bool max_batch = false;
  std::string profile;  // a Chrome trace of a few steps per variant, written here when set
  std::string data;     // shards to feed the step through the training loader; empty: synthetic batches
  int workers = 2;      // the loader's threads per rank (data.workers)
  std::shared_ptr<const BenchData> opened;  // `data`, opened by run()
};

struct Step {
  model::Unet net{nullptr};
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  torch::Tensor images, target;           // synthetic, or the loader's latest
  std::unique_ptr<BenchBatches> batches;  // with --data
  train::LossOptions loss_options;        // the training default: the loss of all ranks' batches
  c10::Device device = c10::kCPU;
  bool autocast = false;

  void sync() const {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
  }
  // One training step; `phases` (forward, backward, exposed all-reduce, optimizer, and
  // with --data the host's wait for the batch, in ms) when given, with a sync of the
  // compute stream after each phase. Not of the device:
  // that would wait for the all-reduces still running on NCCL's stream at the end of
  // backward and count them in it. The compute stream waits for them in synchronize(),
  // so what they add past backward is the exposed phase.
  void run(std::vector<double>* phases = nullptr) {
    auto mark = [&](double start) {
      if (phases == nullptr) return 0.0;
      if (device.is_cuda()) dist::synchronize_current_stream(device.index());
      phases->push_back(now_ms() - start);
      return now_ms();
    };
    double data_wait_ms = 0;
    if (batches) {
      data::Batch batch = batches->next(data_wait_ms);
      images = batch.images;
      target = batch.masks;
    }
    double t = now_ms();
    ddp->zero_grad();
    torch::Tensor loss;
    {
      AutocastScope scope(autocast, at::kBFloat16);
      const torch::Tensor logits = net->forward(images);
      loss = train::segmentation_loss(logits, train::centre_crop_masks(target, logits.size(2)), loss_options);
    }
    t = mark(t);
    loss.backward();
    t = mark(t);
    ddp->synchronize();
    t = mark(t);
    train::clip_gradient_norm(net->parameters(), 12.0);  // the training default
    optimizer->step();
    mark(t);
    // The next batch's copy starts once this step's work is queued, as in training. On a
    // GPU the host waits for the loader there, so that wait is the data wait too.
    if (batches) data_wait_ms += batches->prefetch();
    if (phases != nullptr && batches) phases->push_back(data_wait_ms);
  }
};

model::UnetOptions unet_options(const BenchTrainArgs& a, const std::shared_ptr<dist::Communicator>& comm) {
  model::UnetOptions o;
  o.norm = model::parse_norm(a.norm);
  o.communicator = comm;
  o.base_channels = a.base_channels;
  o.depth = a.depth;
  o.n_channels = a.n_channels;
  o.n_classes = a.n_classes;
  o.padding = model::parse_padding(a.padding);
  o.fuse_norm_relu = a.fuse_norm_relu;
  o.pool_concat_kernels = a.pool_concat_kernels;
  return o;
}

Step make_step(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm, bool checkpointed,
               int64_t batch) {
  Step s;
  s.device = context.device();
  s.autocast = a.precision == "bf16" && s.device.is_cuda();
  torch::manual_seed(0);
  // SyncBatchNorm's layers reduce over `comm`, which outlives the step (not owned here).
  s.net = model::Unet(unet_options(a, std::shared_ptr<dist::Communicator>(std::shared_ptr<void>(), &comm)));
  if (checkpointed) select_checkpointed_blocks(*s.net, a.selection);
  s.net->to(s.device);
  const bool nhwc = a.channels_last && s.device.is_cuda();
  if (nhwc) train::use_channels_last_weights(*s.net);
  s.ddp = std::make_unique<dist::DistributedDataParallel>(s.net.ptr(), comm);
  s.loss_options.global_batch = &comm;
  train::OptimizerSettings settings;
  settings.implementation = train::parse_optimizer_implementation(a.optimizer);
  settings.lr = 1e-4;
  settings.weight_decay = 1e-4;
  s.optimizer = train::make_optimizer(settings, s.net->parameters());
  if (a.opened) {
    s.batches = std::make_unique<BenchBatches>(*a.opened, context.rank(), context.world_size(), batch, s.device, nhwc);
    s.loss_options.ignore_label = a.opened->dataset->header().ignore_label;
    return s;
  }
  s.images = torch::randn({batch, a.n_channels, a.size, a.size}, torch::TensorOptions().device(s.device));
  if (nhwc) s.images = s.images.contiguous(at::MemoryFormat::ChannelsLast);
  s.target = torch::randint(0, a.n_classes, {batch, a.size, a.size},
                            torch::TensorOptions().dtype(torch::kLong).device(s.device));
  return s;
}

// How often the model's layers took dpunet's own kernels and how often ATen's, over one
// training-mode forward of a separate small-batch model under the step's autocast (no
// checkpointing; split skip convolutions as asked, which leave no concatenation):
// a figure whose maps silently fell back to ATen's kernels shows it. Two samples where
// the step has them: BatchNorm in training needs two values per channel, and a 1x1
// bottom map has one per sample.
nlohmann::json kernels_applied(const BenchTrainArgs& a, const torch::Device& device,
                               const std::shared_ptr<dist::Communicator>& comm, bool split_skip_conv) {
  torch::manual_seed(0);
  model::Unet net(unet_options(a, comm));
  net->split_skip_convolutions(split_skip_conv);
  net->to(device);
  const bool nhwc = a.channels_last && device.is_cuda();
  if (nhwc) train::use_channels_last_weights(*net);
  const int64_t batch = std::min<int64_t>(a.batch, 2);
  torch::Tensor images = torch::randn({batch, a.n_channels, a.size, a.size}, torch::TensorOptions().device(device));
  if (nhwc) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  model::KernelUsage usage;
  {
    const model::KernelUsage::Scope recording(usage);
    AutocastScope scope(a.precision == "bf16" && device.is_cuda(), at::kBFloat16);
    net->forward(images);  // the kernels are chosen in forward
  }
  auto count = [](const model::KernelUsage::Count& c) { return nlohmann::json{{"dpunet", c.ours}, {"aten", c.aten}}; };
  return {{"fused_norm_relu", count(usage.norm_relu)},
          {"max_pool", count(usage.max_pool)},
          {"concat_backward", count(usage.concat)}};
}

// Running out of device memory: the caching allocator's error, or a cuDNN/cuBLAS
// allocation failing near the limit (a plain c10::Error; cuDNN's convolution finds no
// engine when every engine's workspace failed to allocate).
bool is_out_of_memory(const c10::Error& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const std::string message = e.what();
  return message.find("out of memory") != std::string::npos || message.find("ALLOC_FAILED") != std::string::npos ||
         message.find("unable to find an engine") != std::string::npos;
}

// The slowest rank's mean step time over a.steps steps, after `warmup` untimed ones
// (the memory peak, if measured, is restarted after them).
double timed_step_ms(Step& s, const BenchTrainArgs& a, int64_t warmup, MemoryProbe* memory = nullptr) {
  for (int64_t i = 0; i < warmup; ++i) s.run();
  s.sync();
  if (memory != nullptr) memory->restart_peak();
  MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));  // the ranks start the clock together
  const double start = now_ms();
  for (int64_t i = 0; i < a.steps; ++i) s.run();
  s.sync();
  return slowest_rank((now_ms() - start) / static_cast<double>(a.steps));
}

// Step time at `batch`; null when the timed steps do not fit. Another ATen error near the
// device's limit is counted as not fitting too, its first line in `error`: one unexpected
// library error must not lose a search of several minutes (and the rows measured before it).
nlohmann::json step_ms_at(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm, bool checkpointed,
                          int64_t batch, std::string& error) {
  try {
    Step s = make_step(a, context, comm, checkpointed, batch);
    return timed_step_ms(s, a, std::max<int64_t>(a.warmup, 1));
  } catch (const c10::Error& e) {
    if (!is_out_of_memory(e)) {
      const std::string message = e.what_without_backtrace();
      error = message.substr(0, message.find('\n'));
    }
    return nullptr;
  }
}

double train_flops_per_sample(const BenchTrainArgs& a) {
  return 3.0 * model::unet_forward_flops(unet_options(a, nullptr), a.size);  // backward counts twice forward
}

// The timed step at a.batch: time, breakdown, memory, FLOP utilisation.
nlohmann::json measure_step(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm,
                            bool checkpointed, MemoryProbe& memory, double peak_tflops) {
  Step s = make_step(a, context, comm, checkpointed, a.batch);
  const double step_ms = timed_step_ms(s, a, a.warmup, &memory);
  std::vector<std::vector<double>> phases(5);
  for (int64_t i = 0; i < a.steps; ++i) {
    std::vector<double> p;
    s.run(&p);
    for (size_t k = 0; k < p.size(); ++k) phases[k].push_back(p[k]);
  }
  const double samples_per_s = static_cast<double>(a.batch * context.world_size()) * 1000.0 / step_ms;
  const double train_flops = train_flops_per_sample(a);
  std::vector<std::string> recomputed;  // as the model has it, not as asked
  for (const auto& block : s.net->block_names()) {
    if (s.net->is_checkpointed(block)) recomputed.push_back(block);
  }
  nlohmann::json row = {
      {"checkpointing", checkpointed ? checkpoint_selection_label(a.selection) : "none"},
      {"checkpointed_blocks", recomputed},
      {"recompute_norm", s.net->recomputes_norm_outputs()},
      {"split_skip_conv", s.net->splits_skip_convolutions()},
      {"step_ms", step_ms},
      {"steps_per_s", 1000.0 / step_ms},
      {"samples_per_s", samples_per_s},
      // Each phase's slowest rank: a faster rank's phase would
      // hold its wait for the others.
      {"forward_ms", slowest_rank(median_of(phases[0]))},
      {"backward_ms", slowest_rank(median_of(phases[1]))},
      {"allreduce_exposed_ms", slowest_rank(median_of(phases[2]))},
      {"optimizer_ms", slowest_rank(median_of(phases[3]))},
      // Synthetic batches wait for nothing: not measured.
      {"data_wait_ms", s.batches ? nlohmann::json(slowest_rank(median_of(phases[4]))) : nlohmann::json()},
      {"peak_memory_mb", static_cast<double>(memory.peak_above_baseline()) / 1e6},
      {"train_gflop_per_sample", train_flops / 1e9}};
  const double achieved_tflops = train_flops * samples_per_s / context.world_size() / 1e12;  // per rank
  row["achieved_tflops_per_rank"] = achieved_tflops;
  if (peak_tflops > 0) row["mfu"] = achieved_tflops / peak_tflops;
  return row;
}

// A Chrome trace of three steps of a variant at a.batch, after its warm-up; rank 0's, one
// file written once (every rank runs the steps alike). Returns its path. Taken after
// every timing: the profiler's CUPTI stays attached to the process once started and
// slows the steps timed after it.
std::string profile_variant(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm,
                            bool checkpointed) {
  Step s = make_step(a, context, comm, checkpointed, a.batch);
  for (int64_t i = 0; i < a.warmup; ++i) s.run();
  s.sync();
  const std::string path = a.profile + (checkpointed ? ".checkpointed.json" : ".json");
  const auto steps = [&] {
    for (int i = 0; i < 3; ++i) s.run();
    s.sync();
  };
  if (context.is_root()) {
    record_profiler_trace(path, steps);
  } else {
    steps();
  }
  return path;
}

// One variant's timed step at a.batch, against a memory baseline of its own. Its model,
// optimizer and batch are gone when this returns, and so is the cache they left.
nlohmann::json measure_variant(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm,
                               bool checkpointed, double peak_tflops) {
  MemoryProbe memory(context.device().str());
  memory.start();
  nlohmann::json row = measure_step(a, context, comm, checkpointed, memory, peak_tflops);
  memory.release_cached();
  return row;
}

// Adds to a variant's `row` the largest batch whose timed run fits, GPU only, at most
// kLargestBatchCap, with that run's step time, samples/s and FLOP utilisation. Searched
// from the timed batch (which fitted) and a guess from its peak memory and the device's
// free memory (largest_fitting_batch). A try is the timed run itself (warm-up and
// a.steps steps): near the device's limit two steps fitted where more did not (the
// H200's 164 and 341, docs/benchmarks.md), so a shorter try reports a batch that
// training cannot hold. Each try is listed (largest_batch_tries: [batch, fitted,
// seconds], and an error other than running out of memory as a fourth) and said on
// stderr as it ends: every new batch is autotuned anew, and a
// search cut off by a timeout still leaves its tries in the log. One process; the device
// is left with an empty cache.
constexpr int64_t kLargestBatchCap = 4096;
void add_capacity(const BenchTrainArgs& a, dist::Context& context, dist::Communicator& comm, bool checkpointed,
                  double peak_tflops, nlohmann::json& row) {
  const MemoryProbe memory(context.device().str());
  const std::string variant = row["checkpointing"].get<std::string>();
  std::map<int64_t, double> step_ms;  // of each try that fitted
  nlohmann::json tries = nlohmann::json::array();
  auto fits = [&](int64_t batch) {
    const double start = now_ms();
    std::string error;
    const nlohmann::json ms = step_ms_at(a, context, comm, checkpointed, batch, error);
    memory.release_cached();
    const double seconds = (now_ms() - start) / 1000.0;
    if (!ms.is_null()) step_ms[batch] = ms.get<double>();
    tries.push_back({batch, !ms.is_null(), seconds});
    if (!error.empty()) tries.back().push_back(error);
    std::cerr << "bench train: largest batch, checkpointing " << variant << ": batch " << batch
              << (ms.is_null() ? " does not fit" : " fits") << " (" << seconds << " s)"
              << (error.empty() ? "" : "; counted as not fitting after another error: " + error) << std::endl;
    return !ms.is_null();
  };
  const auto timed_peak_bytes = static_cast<int64_t>(row["peak_memory_mb"].get<double>() * 1e6);
  const int64_t guess = guess_largest_batch(a.batch, timed_peak_bytes, memory.free_device_bytes(), kLargestBatchCap);
  int64_t largest = largest_fitting_batch(std::min(a.batch, kLargestBatchCap), guess, kLargestBatchCap, fits);
  // The search takes the batch already timed as fitting without trying it again. Should
  // that try fail now (the timed run fitted with little to spare), the answer is below it.
  if (largest > 0 && step_ms.count(largest) == 0 && !fits(largest)) {
    largest = largest > 1 ? largest_fitting_batch(0, largest / 2, largest - 1, fits) : 0;
  }
  row["largest_batch"] = largest;
  row["largest_batch_guess"] = guess;
  row["largest_batch_tries"] = std::move(tries);
  row["largest_batch_step_ms"] = nullptr;
  const auto timed = step_ms.find(largest);
  if (timed == step_ms.end()) return;
  const double samples_per_s = static_cast<double>(largest) * 1000.0 / timed->second;
  row["largest_batch_step_ms"] = timed->second;
  row["largest_batch_ms_per_sample"] = timed->second / static_cast<double>(largest);
  row["largest_batch_samples_per_s"] = samples_per_s;
  if (peak_tflops > 0) row["largest_batch_mfu"] = train_flops_per_sample(a) * samples_per_s / 1e12 / peak_tflops;
}

// A row as one line on stderr as soon as it is measured: a run stopped by a time limit
// before its JSON is printed still leaves its figures in the log.
void log_row(const std::string& what, const nlohmann::json& row) {
  std::cerr << "bench train: " << what << " " << row.dump() << std::endl;
}

void run(const BenchTrainArgs& given) {
  BenchTrainArgs a = given;
  // The largest batch is the device's question: synthetic batches answer it, and a
  // loader would build every tried batch on the host, minutes at the largest.
  DPUNET_CHECK(a.data.empty() || !a.max_batch,
               "bench train: --max-batch measures the device's capacity on synthetic batches; leave --data out");
  // The model's shape questions before anything is built: a size the depth halves to
  // nothing, or a bottom map BatchNorm cannot normalise, would fail inside the first step.
  model::UnetOptions shape = unet_options(a, nullptr);
  // SyncBatchNorm's statistics span the ranks, and its communicator comes later: the
  // shape is checked as a model without norm.
  if (shape.norm == model::Norm::kSyncBatch) shape.norm = model::Norm::kNone;
  model::validate(shape);
  check_bench_input(shape, a.size, a.batch, "bench train");
  dist::Context context(a.device == "cpu"    ? dist::DevicePreference::kCpu
                        : a.device == "cuda" ? dist::DevicePreference::kCuda
                                             : dist::DevicePreference::kAuto);
  if (context.device().is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  // Autocast is CUDA-only here: a bf16 figure measured in fp32 would be mislabelled.
  DPUNET_CHECK(a.precision == "fp32" || context.device().is_cuda(), "bench train: --precision ", a.precision,
               " needs a GPU (autocast); this rank runs on ", context.device().str());
  // Each rank would meet its own out-of-memory errors at its own batch and point of the
  // step, and the ranks' collectives would fall out of step: one GPU's capacity is a
  // one-process question.
  DPUNET_CHECK(!a.max_batch || context.world_size() == 1, "bench train: --max-batch runs as one process (",
               context.world_size(), " ranks started); run it without mpirun");
  // The search stops at the allocator's out-of-memory error, which a CPU meets only when
  // the machine is out of memory, if at all.
  DPUNET_CHECK(!a.max_batch || context.device().is_cuda(), "bench train: --max-batch needs a GPU; this rank runs on ",
               context.device().str());
  if (!a.data.empty()) {
    config::ModelConfig model;
    model.depth = a.depth;
    model.base_channels = a.base_channels;
    model.padding = a.padding;
    a.opened = std::make_shared<const BenchData>(open_bench_data(a.data, a.workers, a.size, model));
    a.n_channels = a.opened->config.model.n_channels;
    a.n_classes = a.opened->config.model.n_classes;
  }
  auto comm = dist::make_communicator(context);
  const std::string gpu = context.device().is_cuda() ? dist::gpu_name(std::max<int>(context.device().index(), 0)) : "";
  // MFU against --peak-tflops, else against the GPU's bf16 peak when the step is bf16 (a
  // fp32 step against it would read as a poor bf16 one).
  double peak_tflops = a.peak_tflops;
  std::string peak_source = peak_tflops > 0 ? "--peak-tflops" : "";
  if (peak_tflops <= 0 && a.precision == "bf16") {
    if (const auto known = bf16_dense_peak_tflops(gpu)) peak_tflops = *known, peak_source = gpu + ", bf16 dense";
  }
  if (context.device().is_cpu()) follow_live_tensors_in_rss();
  std::vector<bool> variants;
  if (a.checkpointing != "on") variants.push_back(false);
  if (a.checkpointing != "off") variants.push_back(true);
  // One untimed step of every variant first: what the libraries allocate once (thread
  // pools, kernel caches, cuDNN plans) is then in each variant's baseline, not in the
  // first one's peak.
  for (const bool checkpointed : variants) {
    Step s = make_step(a, context, *comm, checkpointed, a.batch);
    s.run();
    s.sync();
  }
  MemoryProbe(context.device().str()).release_cached();
  // Every variant's step is timed before any search fills the device, each from an empty
  // cache: the time ratio between variants is taken under the same conditions.
  nlohmann::json rows = nlohmann::json::array();
  for (const bool checkpointed : variants) {
    rows.push_back(measure_variant(a, context, *comm, checkpointed, peak_tflops));
    if (context.is_root()) log_row("row", rows.back());
  }
  // Each variant's own count (its skip convolutions split or not), and the top level's:
  // the model without checkpointing, as the flags above give it, which is an unsplit
  // variant's count where there is one (the count runs no checkpointing).
  nlohmann::json plain_kernels;
  for (auto& row : rows) {
    row["kernels_applied"] = kernels_applied(a, context.device(), comm, row["split_skip_conv"]);
    if (!row["split_skip_conv"].get<bool>() && plain_kernels.is_null()) plain_kernels = row["kernels_applied"];
  }
  if (plain_kernels.is_null()) plain_kernels = kernels_applied(a, context.device(), comm, false);
  MemoryProbe(context.device().str()).release_cached();
  auto report = [&] {
    return nlohmann::json{
        {"benchmark", "train"},
        {"device", context.device().str()},
        {"gpu_name", gpu},
        {"peak_tflops", peak_tflops > 0 ? nlohmann::json(peak_tflops) : nlohmann::json()},
        {"peak_source", peak_source},
        {"ranks", context.world_size()},
        {"threads", torch::get_num_threads()},
        {"size", a.size},
        {"batch_per_rank", a.batch},
        {"precision", a.precision},
        {"optimizer", a.optimizer},
        {"norm", a.norm},
        {"channels_last", a.channels_last && context.device().is_cuda()},
        {"fuse_norm_relu", a.fuse_norm_relu},
        {"pool_concat_kernels", a.pool_concat_kernels},
        {"kernels_applied", plain_kernels},
        {"checkpoint_policy", a.checkpointing == "off" ? "none" : checkpoint_selection_label(a.selection)},
        {"base_channels", a.base_channels},
        {"depth", a.depth},
        {"padding", a.padding},
        {"n_channels", a.n_channels},
        {"n_classes", a.n_classes},
        {"data", a.opened ? a.opened->description : "synthetic, on the device"},
        {"torch_version", build_info().torch_version},
        {"results", rows}};
  };
  if (a.max_batch && context.device().is_cuda()) {
    // The whole report as measured so far, on one line, before each search and after the
    // last: the searches take minutes, and a run stopped by a time limit leaves what it
    // found readable (gpu_measure.sh records the last such line as a partial result).
    auto report_so_far = [&] {
      if (context.is_root()) std::cerr << "bench train: report so far " << report().dump() << std::endl;
    };
    for (size_t i = 0; i < variants.size(); ++i) {
      report_so_far();
      add_capacity(a, context, *comm, variants[i], peak_tflops, rows[i]);
      log_row("row with its largest batch", rows[i]);
    }
    report_so_far();
  }
  if (!a.profile.empty()) {
    for (size_t i = 0; i < variants.size(); ++i) {
      rows[i]["profile"] = profile_variant(a, context, *comm, variants[i]);
      MemoryProbe(context.device().str()).release_cached();
    }
  }
  if (!context.is_root()) return;
  std::cout << report().dump(2) << std::endl;
}

}  // namespace

void add_bench_train_command(CLI::App& bench) {
  auto a = std::make_shared<BenchTrainArgs>();
  CLI::App* cmd = bench.add_subcommand("train", "Training step: throughput, breakdown, memory, MFU");
  cmd->add_option("--size", a->size, "Tile side")->capture_default_str()->check(at_least(1));
  cmd->add_option("--batch", a->batch, "Batch per rank")->capture_default_str()->check(at_least(1));
  cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str()->check(at_least(1));
  cmd->add_option("--warmup", a->warmup,
                  "Untimed steps first (the first lays out the gradient buckets and the optimizer's state)")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--base-channels", a->base_channels, "Model width")->capture_default_str()->check(at_least(1));
  cmd->add_option("--depth", a->depth, "Model depth")->capture_default_str()->check(at_least(1));
  cmd->add_option("--padding", a->padding, "same or valid")
      ->capture_default_str()
      ->check(CLI::IsMember({"same", "valid"}));
  cmd->add_option("--precision", a->precision, "fp32 or bf16 (autocast, CUDA)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--checkpointing", a->checkpointing, "off, on or both")
      ->capture_default_str()
      ->check(CLI::IsMember({"off", "on", "both"}));
  cmd->add_option("--optimizer", a->optimizer, "AdamW implementation: fused, foreach or per_parameter")
      ->capture_default_str()
      ->check(CLI::IsMember({"fused", "foreach", "per_parameter"}));
  cmd->add_option("--norm", a->norm, "model.norm: batch, sync_batch, instance, group or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"batch", "sync_batch", "instance", "group", "none"}));
  cmd->add_option("--channels-last", a->channels_last, "NHWC weights and activations (CUDA)")->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--fuse-norm-relu", a->fuse_norm_relu, "Fused BatchNorm+ReLU kernels (CUDA)")->capture_default_str();
  cmd->add_option("--pool-concat-kernels", a->pool_concat_kernels,
                  "dpunet's max pooling and concatenation-backward kernels (CUDA)")
      ->capture_default_str();
  add_checkpoint_selection_options(*cmd, a->selection);
  cmd->add_option("--peak-tflops", a->peak_tflops,
                  "Device dense peak for MFU (default: the GPU's bf16 peak when known and --precision bf16)")
      ->check(above_zero());
  cmd->add_flag("--max-batch", a->max_batch, "Also find the largest batch that fits (GPU)");
  cmd->add_option(
      "--profile", a->profile,
      "Also write a profiler trace of 3 steps, allocations included, to PREFIX.json (PREFIX.checkpointed.json "
      "with checkpointing)");
  CLI::Option* data =
      cmd->add_option("--data", a->data,
                      "Shards (a folder, glob, index or .h5) fed through the training loader, which the breakdown's "
                      "data wait then measures (default: synthetic batches on the device); the model takes their "
                      "channels and classes")
          ->check(not_empty());
  cmd->add_option("--workers", a->workers, "With --data: the loader's threads per rank (data.workers)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64))
      ->needs(data);
  cmd->callback([a] { run(*a); });
}

}  // namespace dpunet::app
