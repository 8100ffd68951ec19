// `dpunet bench`: the benchmark family. Multi-rank ones run under mpirun.
#include "app/bench_commands.h"

#include "app/commands.h"
#include "common/error.h"
#include "common/launched_copies.h"

namespace dpunet::app {

void require_single_process(const std::string& command) {
  const LaunchedCopies copies = launched_copies();
  DPUNET_CHECK(copies.count <= 1, command, " runs as one process, but ", copies.variable, "=", copies.count,
               " says several were started: run it without mpirun/srun");
}

void check_bench_input(const model::UnetOptions& model, int64_t size, int64_t batch, const std::string& command) {
  model::output_size_or_fail(model, size, command + " --size " + std::to_string(size));
  const std::string bottom = model::bottom_norm_problem(model, size, size, batch);
  DPUNET_CHECK(bottom.empty(), command, " --size ", size, " --batch ", batch, ": ", bottom);
}

void add_bench_commands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks; each prints JSON");
  bench->require_subcommand(1);
  add_bench_model_command(*bench);
  add_bench_allreduce_command(*bench);
  add_bench_ddp_command(*bench);
  add_bench_data_command(*bench);
  add_bench_predict_command(*bench);
  add_bench_train_command(*bench);
}

}  // namespace dpunet::app
