// `dpunet train [CONFIG.yaml] [--set key=value ...] [--resume auto|PATH] [--print-config]`.
// Without CONFIG the built-in quickstart config is used. Every rank parses the config
// before MPI starts; the ranks then agree whether any failed, so a bad config ends every
// rank together: printed once by rank 0 when it failed too, else by each rank that did.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "app/cli_checks.h"
#include "app/commands.h"
#include "app/embedded_configs.h"
#include "common/error.h"
#include "common/process_label.h"
#include "config/config.h"
#include "dist/context.h"
#include "train/preemption.h"
#include "train/trainer.h"

namespace dpunet::app {
namespace {

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string resume = "none";
  int64_t stop_at_step = 0;
  std::string init_weights;
  bool print_config = false;
};

dist::DevicePreference device_preference(const std::string& device) {
  if (device == "cpu") return dist::DevicePreference::kCpu;
  if (device == "cuda") return dist::DevicePreference::kCuda;
  return dist::DevicePreference::kAuto;
}

// The config the arguments make, after the checks of the arguments themselves (also for
// --print-config, which must not print what a training start would refuse).
config::Config read_config(const TrainArgs& args) {
  // A checkpoint named outright and a set of starting weights contradict each other.
  DPUNET_CHECK(args.init_weights.empty() || args.resume == "none" || args.resume == "auto",
               "give --init-weights or --resume ", args.resume, ", not both (a checkpoint holds its own weights)");
  if (args.config_path.empty())
    return config::parse_config(quickstart_config(), "built-in quickstart config", args.overrides);
  return config::load_config(args.config_path, args.overrides);
}

int run(const TrainArgs& args) {
  // Before MPI starts (which can take a while on a busy cluster): a SIGTERM or SIGUSR1 from
  // the launcher or scheduler then stops the run at its first step, instead of killing it.
  train::install_preemption_handlers();
  if (args.print_config) {
    try {
      std::cout << config::to_yaml(read_config(args));
    } catch (const Error& e) {  // as a training start reports a config error
      std::fprintf(stderr, "dpunet: error: %s\n", e.what());
      return 2;
    }
    return 0;
  }
  // Parse first: the device preference comes from the config. A rank whose config failed
  // starts on CPU (and is left out of the ranks' GPU agreement) only to stop with the others.
  config::Config config;
  std::string config_error;
  try {
    config = read_config(args);
  } catch (const Error& e) {
    config_error = e.what();
  }
  dist::Context context(config_error.empty() ? device_preference(config.run.device) : dist::DevicePreference::kCpu);
  // Usually every rank fails alike, and rank 0 says so once; a config path that exists
  // only on some nodes fails there alone, and those ranks speak for themselves. Either
  // way every rank stops here, before the first collective of training.
  if (context.any_rank(!config_error.empty())) {
    const bool root_failed = context.any_rank(context.is_root() && !config_error.empty());
    if (context.is_root() && root_failed) {
      std::fflush(stdout);
      std::fprintf(stderr, "dpunet: error: %s\n", config_error.c_str());
    }
    if (!root_failed && !config_error.empty()) dist::print_fatal_error(process_label(), config_error);
    return 2;
  }
  train::TrainOptions options;
  options.resume = args.resume;
  options.stop_at_step = args.stop_at_step;
  options.init_weights = args.init_weights;
  return train::run_training(config, context, options);
}

}  // namespace

void add_train_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a U-Net (run under mpirun for several ranks)");
  // An empty path given (an unset variable in a script) is no "default": it would train
  // the built-in config unasked.
  cmd->add_option("config", args->config_path, "YAML config (default: the built-in quickstart)")
      ->check([](const std::string& path) {
        return path.empty() ? std::string(
                                  "an empty path (an unset variable?); leave it out for the built-in "
                                  "quickstart config")
                            : std::string();
      });
  cmd->add_option("--set", args->overrides, "Override a key, e.g. --set optimizer.lr=3e-4 (repeatable)")
      ->allow_extra_args(false);
  // Empty (an unset variable) would otherwise mean a fresh start, or no starting weights.
  cmd->add_option("--resume", args->resume,
                  "none, auto (newest valid checkpoint of run.dir, else fresh) or a checkpoint (a .ckpt or a "
                  "best/latest pointer)")
      ->capture_default_str()
      ->check(not_empty());
  cmd->add_option("--stop-at-step", args->stop_at_step, "Checkpoint and stop after this step (continue with --resume)")
      ->check(at_least(1));
  cmd->add_option("--init-weights", args->init_weights,
                  "Start from these weights: a safetensors file (dpunet export or PyTorch) or another run's checkpoint "
                  "(its model only; a .ckpt, a best/latest pointer, or a run directory: its best, else newest)")
      ->check(not_empty());
  cmd->add_flag("--print-config", args->print_config, "Print the resolved config and exit");
  cmd->callback([args, exit_code] { *exit_code = run(*args); });
}

}  // namespace dpunet::app
