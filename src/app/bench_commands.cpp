// `dpunet bench`: the benchmark family. Multi-rank ones run under mpirun.
#include "app/bench_commands.h"

#include <cstdlib>

#include "app/commands.h"
#include "common/error.h"

namespace dpunet::app {

void require_single_process(const std::string& command) {
  // What Open MPI's mpirun, PMI launchers (MPICH, srun --mpi=pmi2) and a srun step set.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"}) {
    const char* value = std::getenv(name);
    DPUNET_CHECK(value == nullptr || std::atoi(value) <= 1, command, " runs as one process, but ", name, "=", value,
                 " says several were started: run it without mpirun/srun");
  }
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
