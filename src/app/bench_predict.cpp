// `dpunet bench predict`: overlap-tile inference speed on one synthetic image (tiles/s
// and images/s), with freshly initialised weights of the chosen width.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/cli_checks.h"
#include "app/memory_probe.h"
#include "common/autocast_scope.h"
#include "common/build_info.h"
#include "common/tile_grid.h"
#include "infer/ensemble_rows.h"
#include "infer/sliding_window.h"
#include "model/unet.h"
#include "model/unet_options.h"

namespace dpunet::app {
namespace {

struct BenchPredictArgs {
  int64_t size = 1024, tile = 256, batch = 4, base_channels = 64, threads = 0;
  double overlap = 0.5;
  bool tta = false, fp32 = false;
  std::string device = "cpu";
};

void wait_for(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

void run(const BenchPredictArgs& args) {
  require_single_process("bench predict");
  if (args.threads > 0) torch::set_num_threads(static_cast<int>(args.threads));
  const torch::Device device(args.device);
  model::UnetOptions options;
  options.base_channels = args.base_channels;
  options.n_classes = 3;
  model::output_size_or_fail(options, args.tile, "--tile " + std::to_string(args.tile));
  model::Unet net(options);
  net->to(device);
  net->eval();
  // As `dpunet predict` runs it: bf16 autocast on a GPU unless --fp32.
  const bool autocast = device.is_cuda() && !args.fp32;
  const infer::Forward forward = [&](const torch::Tensor& x) {
    AutocastScope scope(autocast, at::kBFloat16);
    return net->forward(x);
  };
  infer::TileOptions tiles;
  tiles.input_tile = tiles.output_tile = args.tile;
  tiles.overlap = args.overlap;
  tiles.batch = args.batch;
  tiles.flip_tta = args.tta;
  const torch::Tensor image = torch::randn({1, args.size, args.size}).to(device);
  const auto per_axis = tile_origins(args.size, args.tile, args.overlap).size();
  const int64_t tile_count = static_cast<int64_t>(per_axis * per_axis) * (args.tta ? 4 : 1);
  {
    // Warm-up at the timed batch's shape (kernel choice, allocator), finished before the clock starts.
    torch::NoGradGuard no_grad;
    forward(torch::randn({std::min<int64_t>(args.batch, tile_count), 1, args.tile, args.tile}).to(device));
    wait_for(device);
  }
  // As predict takes an image (with one model): band by band into a class map, copied
  // to the host once at the end, which waits for the device.
  const auto predict_image = [&] {
    std::vector<infer::EnsembleMember> one;
    one.push_back({"", infer::TiledPrediction(forward, image, tiles)});
    infer::EnsembleRows rows(std::move(one));
    (void)infer::class_map(rows).cpu();
  };
  const auto start = std::chrono::steady_clock::now();
  predict_image();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The prediction's own memory above the image and the model (its class map, band sums,
  // a batch of tiles, the forward's activations), in a second, untimed pass: on the CPU
  // it is measured with large allocations going straight to the system, which slows
  // what it measures (host memory on CPU, the allocator's peak on a GPU).
  if (device.is_cpu()) follow_live_tensors_in_rss();
  MemoryProbe memory(args.device);
  memory.start();
  predict_image();
  const int64_t peak = memory.peak_above_baseline();
  const nlohmann::json out = {{"benchmark", "predict"},
                              {"device", args.device},
                              {"threads", torch::get_num_threads()},
                              {"image", args.size},
                              {"tile", args.tile},
                              {"overlap", args.overlap},
                              {"batch", args.batch},
                              {"tta", args.tta},
                              {"precision", autocast ? "bf16" : "fp32"},
                              {"base_channels", args.base_channels},
                              {"tiles", tile_count},
                              {"seconds", seconds},
                              {"tiles_per_s", tile_count / seconds},
                              {"images_per_s", 1.0 / seconds},
                              {"peak_memory_mb", static_cast<double>(peak) / 1e6},
                              {"torch_version", build_info().torch_version}};
  std::cout << out.dump(2) << std::endl;
}

}  // namespace

void add_bench_predict_command(CLI::App& bench) {
  auto args = std::make_shared<BenchPredictArgs>();
  CLI::App* cmd = bench.add_subcommand("predict", "Overlap-tile inference: tiles/s and images/s");
  cmd->add_option("--size", args->size, "Image side")->capture_default_str()->check(at_least(1));
  cmd->add_option("--tile", args->tile, "Tile side")->capture_default_str()->check(at_least(1));
  cmd->add_option("--overlap", args->overlap, "Tile overlap, at most 0.9 as in predict")
      ->capture_default_str()
      ->check(number_from(0.0, 0.9, "from 0 to 0.9"));
  cmd->add_option("--batch", args->batch, "Tiles per forward pass")->capture_default_str()->check(at_least(1));
  cmd->add_option("--base-channels", args->base_channels, "Model width")->capture_default_str()->check(at_least(1));
  cmd->add_option("--threads", args->threads, "Intra-op threads (0: torch's default)")->check(at_least(0));
  cmd->add_option("--device", args->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--tta", args->tta, "Flip test-time augmentation");
  cmd->add_flag("--fp32", args->fp32, "No bf16 autocast on GPU (as predict --fp32)");
  cmd->callback([args] { run(*args); });
}

}  // namespace dpunet::app
