// How many copies of this program a launcher says it started, from its environment.
#pragma once

#include <string>

namespace dpunet {

struct LaunchedCopies {
  std::string variable;  // the variable that said so; empty when none is set
  int count = 0;
};

// Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, PMI launchers (MPICH's hydra, srun
// --mpi=pmi2) PMI_SIZE, and a srun step SLURM_STEP_NUM_TASKS; the first one set counts.
// mpirun inside an allocation starts its daemons with srun, so their step's count (the
// nodes) reaches the ranks too: OMPI_COMM_WORLD_SIZE comes first for that reason.
LaunchedCopies launched_copies();

// This copy's rank as the same launcher says (OMPI_COMM_WORLD_RANK, PMI_RANK,
// SLURM_PROCID); 0 when none says, as for a process started alone.
int launched_rank();

}  // namespace dpunet
