// The `dpunet bench` subcommands, one file each; add_bench_commands (commands.h) adds them all.
#pragma once

#include <CLI/CLI.hpp>

namespace dpunet::app {

void add_bench_model_command(CLI::App& bench);
void add_bench_allreduce_command(CLI::App& bench);
void add_bench_ddp_command(CLI::App& bench);
void add_bench_data_command(CLI::App& bench);
void add_bench_predict_command(CLI::App& bench);
void add_bench_train_command(CLI::App& bench);

}  // namespace dpunet::app
