// The `dpunet bench` subcommands, one file each; add_bench_commands (commands.h) adds them all.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "model/unet_options.h"

namespace dpunet::app {

// For the single-process benchmarks (model, data, predict): an error naming `command`
// when a launcher started several copies (mpirun, srun), which would share one GPU and
// print one JSON each.
void require_single_process(const std::string& command);
// Before a benchmark builds its model: an error naming `command` ("bench train") and its
// --size/--batch when the model cannot take the size, or its norm would find one value
// per channel at the bottom map (an ATen error in the first step otherwise).
void check_bench_input(const model::UnetOptions& model, int64_t size, int64_t batch, const std::string& command);

void add_bench_model_command(CLI::App& bench);
void add_bench_allreduce_command(CLI::App& bench);
void add_bench_ddp_command(CLI::App& bench);
void add_bench_data_command(CLI::App& bench);
void add_bench_predict_command(CLI::App& bench);
void add_bench_train_command(CLI::App& bench);

}  // namespace dpunet::app
