// Each `dpunet` subcommand registers itself on the CLI here; main.cpp only dispatches.
#pragma once

#include <CLI/CLI.hpp>

namespace dpunet::app {

// `dpunet bench ...`: benchmarks that print JSON.
void add_bench_commands(CLI::App& app);
// `dpunet data synth|import|inspect`: HDF5 shard datasets.
void add_data_commands(CLI::App& app);
// `dpunet train`: the training run; its exit code goes to *exit_code.
void add_train_command(CLI::App& app, int* exit_code);
// `dpunet plot RUN_DIR`: training curves to PNG.
void add_plot_command(CLI::App& app);
// `dpunet predict`: overlap-tile inference.
void add_predict_command(CLI::App& app);
// `dpunet export`: weights for PyTorch.
void add_export_command(CLI::App& app);
// `dpunet version`: versions and GPU capabilities of this build.
void add_version_command(CLI::App& app);

}  // namespace dpunet::app
