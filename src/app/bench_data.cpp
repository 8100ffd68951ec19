// `dpunet bench data`: loader throughput per rank (samples/s) on synthetic shards,
// uncompressed and gzip, with no augmentation, flips and rotations, rotation/scaling,
// elastic deformation, everything, and blur with lower resolution. Each variant times
// the train loop's view: popping batches.
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <H5public.h>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/cli_checks.h"
#include "common/build_info.h"
#include "common/remove_tree.h"
#include "data/loader.h"
#include "data/synth.h"

namespace dpunet::app {
namespace {

struct BenchDataArgs {
  int64_t size = 572;
  int64_t samples = 48;
  int64_t batch = 4;
  int workers = 1;
  int64_t batches = 40;
  int gzip_level = 4;
  std::string dir;  // where the shards go; a fresh temporary directory by default
};

struct Variant {
  const char* name;
  bool augment;
  data::AugmentOptions augmentation;
};

std::vector<Variant> variants() {
  data::AugmentOptions flips;  // defaults: flips and 90-degree rotations at p = 0.5
  data::AugmentOptions affine = flips;
  affine.affine_probability = 1.0;
  data::AugmentOptions elastic = flips;
  elastic.elastic_probability = 1.0;
  data::AugmentOptions full = affine;
  full.elastic_probability = 1.0;
  full.brightness_probability = full.contrast_probability = full.gamma_probability = full.noise_probability = 0.3;
  full.gamma_invert_probability = 0.3;
  data::AugmentOptions filters = flips;
  filters.blur_probability = filters.low_resolution_probability = 1.0;
  return {{"none", false, flips},     {"flip_rot90", true, flips}, {"affine", true, affine},
          {"elastic", true, elastic}, {"all", true, full},         {"blur_low_resolution", true, filters}};
}

double samples_per_second(const std::vector<std::string>& shards, const BenchDataArgs& args, const Variant& variant) {
  auto dataset = std::make_shared<const data::Dataset>(shards);
  DPUNET_CHECK(dataset->size() == args.samples, "bench data: ", dataset->size(), " samples read, ", args.samples,
               " written");
  data::LoaderOptions options;
  options.batch_size = args.batch;
  options.workers = args.workers;
  options.augment = variant.augment;
  options.augmentation = variant.augmentation;
  data::SamplerOptions sampling;
  sampling.batch = args.batch;
  data::Loader loader(dataset, data::DistributedSampler(dataset->size(), 0, 1, sampling), options);
  // One epoch untimed: the shards are in the page cache and the threads are running.
  // Then the batches already queued: timing them would time a pop, not the loading.
  for (int64_t i = 0; i < loader.batches_per_epoch() + options.prefetch_batches; ++i) loader.next();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < args.batches; ++i) loader.next();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(args.batches * args.batch) / seconds;
}

void run(const BenchDataArgs& args) {
  require_single_process("bench data");
  namespace fs = std::filesystem;
  const fs::path dir = args.dir.empty() ? fs::temp_directory_path() / ("dpunet-bench-data-" + std::to_string(getpid()))
                                        : fs::path(args.dir);
  // The temporary shards go however the benchmark ends (an error, a bad option found late).
  struct RemovedAtExit {
    std::string path;
    ~RemovedAtExit() {
      if (!path.empty()) remove_tree(path);
    }
  } temporary{args.dir.empty() ? dir.string() : std::string()};
  torch::set_num_threads(1);
  nlohmann::json rows = nlohmann::json::array();
  // Without compression the second pass would repeat the first.
  const std::vector<int> levels = args.gzip_level > 0 ? std::vector<int>{0, args.gzip_level} : std::vector<int>{0};
  for (const int gzip : levels) {
    data::SynthOptions synth;
    synth.samples = args.samples;
    synth.shards = static_cast<int>(std::min<int64_t>(2, args.samples));
    synth.height = synth.width = args.size;
    synth.gzip_level = gzip;
    synth.prefix = gzip > 0 ? "gzip" : "raw";
    // The shards just written: a --dir kept from an earlier run may hold more by the name.
    const std::vector<std::string> shards = data::write_synthetic_dataset(dir.string(), synth);
    for (const Variant& variant : variants()) {
      rows.push_back({{"compression", gzip > 0 ? "gzip" + std::to_string(gzip) : "none"},
                      {"augmentation", variant.name},
                      {"samples_per_s", samples_per_second(shards, args, variant)}});
    }
  }
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  nlohmann::json out = {
      {"benchmark", "data"},
      {"size", args.size},
      {"samples", args.samples},
      {"dtype", "uint8"},
      {"batch", args.batch},
      {"workers", args.workers},
      {"batches_timed", args.batches},
      {"hdf5_version", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release)},
      {"dpunet_version", build_info().dpunet_version},
      {"results", rows}};
  std::cout << out.dump(2) << std::endl;
}

}  // namespace

void add_bench_data_command(CLI::App& bench) {
  auto args = std::make_shared<BenchDataArgs>();
  CLI::App* cmd = bench.add_subcommand("data", "Loader samples/s per rank by compression and augmentation");
  cmd->add_option("--size", args->size, "Image and patch size (square)")->capture_default_str();
  cmd->add_option("--samples", args->samples, "Samples in each synthetic dataset")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(at_least(1));
  cmd->add_option("--workers", args->workers, "Loader threads (1 = one core)")
      ->capture_default_str()
      ->check(at_least(1));
  // Several times the loader's queue, so that the figure is the loading's rate.
  cmd->add_option("--batches", args->batches, "Batches timed per variant (at least 16)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--gzip", args->gzip_level, "Deflate level of the compressed variant (0: uncompressed only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 9));
  cmd->add_option("--dir", args->dir, "Directory for the shards (kept); default: a temporary one, removed");
  cmd->callback([args] { run(*args); });
}

}  // namespace dpunet::app
