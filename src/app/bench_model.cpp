// `dpunet bench model`: forward and forward+backward time and peak memory of the U-Net,
// with and without activation checkpointing. Each variant runs in its own process so one
// variant's heap never colours the other's peak; the parent prints the combined JSON.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <utility>

#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/bench_timing.h"
#include "app/checkpoint_selection.h"
#include "app/cli_checks.h"
#include "app/memory_probe.h"
#include "common/build_info.h"
#include "common/child_output.h"
#include "common/error.h"
#include "model/unet.h"

namespace dpunet::app {
namespace {

struct BenchModelArgs {
  int64_t size = 256;
  int64_t batch = 2;
  std::string device = "cpu";
  int threads = 1;
  int64_t n_channels = 1;
  int64_t n_classes = 2;
  int64_t base_channels = 64;
  int64_t depth = 4;
  bool bilinear = false;
  std::string padding = "same";  // same | valid (the 2015 paper's; the target is the output's centre)
  int warmup = 1;
  int repeats = 3;
  std::string variant = "both";       // both | plain | checkpointed
  CheckpointSelection checkpointing;  // the checkpointed variant's
};

model::UnetOptions unet_options(const BenchModelArgs& args) {
  model::UnetOptions options;
  options.n_channels = args.n_channels;
  options.n_classes = args.n_classes;
  options.base_channels = args.base_channels;
  options.depth = args.depth;
  options.bilinear = args.bilinear;
  options.padding = model::parse_padding(args.padding);
  return options;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Runs one variant in this process and returns its figures.
nlohmann::json run_variant(const BenchModelArgs& args, bool checkpointed) {
  const torch::Device device(args.device);
  if (device.is_cpu()) follow_live_tensors_in_rss();
  torch::set_num_threads(args.threads);
  torch::manual_seed(0);

  const model::UnetOptions options = unet_options(args);
  model::Unet net(options);
  net->to(device);
  net->train();
  if (checkpointed) select_checkpointed_blocks(*net, args.checkpointing);

  const auto x = torch::randn({args.batch, args.n_channels, args.size, args.size}, device);
  const int64_t out = model::output_size_or_fail(options, args.size, "--size " + std::to_string(args.size));
  const auto target =
      torch::randint(args.n_classes, {args.batch, out, out}, torch::TensorOptions(device).dtype(torch::kLong));
  auto step = [&] { torch::nn::functional::cross_entropy(net->forward(x), target).backward(); };
  for (int i = 0; i < args.warmup; ++i) step();
  // Gradients stay allocated between steps (as in dpunet's reducer), so the baseline holds
  // weights and gradients and the peak above it is the step's activations and workspace.
  auto zero_grads = [&] {
    for (auto& p : net->parameters()) {
      if (p.grad().defined()) p.grad().zero_();
    }
  };
  zero_grads();

  MemoryProbe probe(args.device);
  probe.start();
  step();
  const int64_t peak = probe.peak_above_baseline();

  std::vector<double> forward_ms, step_ms;
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  for (int i = 0; i < args.repeats; ++i) {
    synchronize(device);
    auto t0 = Clock::now();
    {
      auto y = net->forward(x);
      synchronize(device);
    }
    forward_ms.push_back(ms_since(t0));

    zero_grads();
    synchronize(device);
    t0 = Clock::now();
    step();
    synchronize(device);
    step_ms.push_back(ms_since(t0));
  }
  return {{"checkpointing", checkpointed},
          {"split_skip_conv", net->splits_skip_convolutions()},
          {"forward_ms", median_of(forward_ms)},
          {"forward_backward_ms", median_of(step_ms)},
          {"peak_bytes_above_baseline", peak}};
}

// Runs `dpunet bench model ... --variant <variant>` as a child and parses its JSON.
nlohmann::json run_variant_in_child(const BenchModelArgs& a, const std::string& variant) {
  // This very program, by the kernel's link to it: a rebuild during a long bench replaces
  // the file (its path then reads "dpunet (deleted)"), not the program running.
  std::vector<std::string> argv{"/proc/self/exe", "bench", "model", "--variant", variant};
  const std::pair<const char*, std::string> options[] = {{"--size", std::to_string(a.size)},
                                                         {"--batch", std::to_string(a.batch)},
                                                         {"--device", a.device},
                                                         {"--threads", std::to_string(a.threads)},
                                                         {"--n-channels", std::to_string(a.n_channels)},
                                                         {"--n-classes", std::to_string(a.n_classes)},
                                                         {"--base-channels", std::to_string(a.base_channels)},
                                                         {"--depth", std::to_string(a.depth)},
                                                         {"--padding", a.padding},
                                                         {"--warmup", std::to_string(a.warmup)},
                                                         {"--repeats", std::to_string(a.repeats)}};
  for (const auto& [option, value] : options) argv.insert(argv.end(), {option, value});
  if (a.bilinear) argv.push_back("--bilinear");
  for (std::string& word : checkpoint_selection_arguments(a.checkpointing)) argv.push_back(std::move(word));
  const ChildOutput child = run_child(argv);
  DPUNET_CHECK(child.status == 0, "bench model: the child process timing the ", variant, " model ",
               child.signal != 0 ? "was killed by signal " + std::to_string(child.signal) +
                                       (child.signal == 9 ? " (out of memory?)" : "")
                                 : "failed (exit " + std::to_string(child.status) + "; its error is above)");
  return nlohmann::json::parse(child.output);
}

void run_bench_model(const BenchModelArgs& args) {
  require_single_process("bench model");
  // Validate in the parent so a bad size fails once, with the model's own message naming
  // the nearest sizes that suit the padding and depth.
  const model::UnetOptions options = unet_options(args);
  model::validate(options);
  check_bench_input(options, args.size, args.batch, "bench model");
  check_checkpoint_selection(args.checkpointing);
  // Block names against a model of this depth (one channel wide: names, not figures),
  // before a child times the plain model.
  model::UnetOptions names = options;
  names.base_channels = 1;
  model::Unet name_check(names);
  select_checkpointed_blocks(*name_check, args.checkpointing);

  if (args.variant != "both") {
    std::cout << run_variant(args, args.variant == "checkpointed").dump() << std::endl;
    return;
  }
  const nlohmann::json plain = run_variant_in_child(args, "plain");
  const nlohmann::json ckpt = run_variant_in_child(args, "checkpointed");
  const BuildInfo info = build_info();
  nlohmann::json out = {
      {"benchmark", "model"},
      {"device", args.device},
      {"threads", args.threads},
      {"size", args.size},
      {"batch", args.batch},
      {"checkpointed_blocks", checkpoint_selection_label(args.checkpointing)},
      {"recompute_norm", args.checkpointing.recompute_norm},
      {"split_skip_conv", ckpt["split_skip_conv"]},
      {"model",
       {{"n_channels", args.n_channels},
        {"n_classes", args.n_classes},
        {"base_channels", args.base_channels},
        {"depth", args.depth},
        {"bilinear", args.bilinear},
        {"padding", args.padding}}},
      {"torch_version", info.torch_version},
      {"plain", plain},
      {"checkpointed", ckpt},
      {"memory_ratio", ckpt["peak_bytes_above_baseline"].get<double>() /
                           std::max(1.0, plain["peak_bytes_above_baseline"].get<double>())},
      {"time_ratio", ckpt["forward_backward_ms"].get<double>() / plain["forward_backward_ms"].get<double>()},
  };
  std::cout << out.dump(2) << std::endl;
}

}  // namespace

void add_bench_model_command(CLI::App& bench) {
  auto args = std::make_shared<BenchModelArgs>();
  CLI::App* model = bench.add_subcommand(
      "model", "U-Net forward and forward+backward time and peak memory, checkpointing off and on");
  model->add_option("--size", args->size, "Input height and width in pixels")
      ->capture_default_str()
      ->check(at_least(1));
  model->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(at_least(1));
  model->add_option("--device", args->device, "cpu or cuda[:N]")->capture_default_str();
  model->add_option("--threads", args->threads, "Intra-op CPU threads")->capture_default_str()->check(at_least(1));
  model->add_option("--n-channels", args->n_channels, "Input channels")->capture_default_str()->check(at_least(1));
  model->add_option("--n-classes", args->n_classes, "Output classes")->capture_default_str()->check(at_least(1));
  model->add_option("--base-channels", args->base_channels, "Width of the first level")
      ->capture_default_str()
      ->check(at_least(1));
  model->add_option("--depth", args->depth, "Number of down/up blocks")->capture_default_str()->check(at_least(1));
  model->add_flag("--bilinear", args->bilinear, "Bilinear upsampling instead of transposed convs");
  model->add_option("--padding", args->padding, "same, or valid (unpadded convolutions: a size that tiles)")
      ->capture_default_str()
      ->check(CLI::IsMember({"same", "valid"}));
  model
      ->add_option("--warmup", args->warmup,
                   "Untimed steps first (the first allocates the gradients, which the baseline holds)")
      ->capture_default_str()
      ->check(at_least(1));
  model->add_option("--repeats", args->repeats, "Timed steps (the median is reported)")
      ->capture_default_str()
      ->check(at_least(1));
  model->add_option("--variant", args->variant, "both, or one of plain / checkpointed in this process")
      ->capture_default_str()
      ->check(CLI::IsMember({"both", "plain", "checkpointed"}));
  add_checkpoint_selection_options(*model, args->checkpointing);
  model->callback([args] { run_bench_model(*args); });
}

}  // namespace dpunet::app
