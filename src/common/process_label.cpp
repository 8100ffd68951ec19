// Rank and host for messages. The rank is asked of MPI each time (a read of the
// communicator's state, safe from any thread under MPI_THREAD_MULTIPLE), so nothing
// global has to be set up or torn down.
#include "common/process_label.h"

#include <limits.h>
#include <mpi.h>
#include <unistd.h>

namespace dpunet {

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

int world_rank_or_unknown() {
  int initialized = 0, finalized = 0;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return -1;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return -1;
  int rank = -1;
  if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS) return -1;
  return rank;
}

std::string process_label() {
  const int rank = world_rank_or_unknown();
  if (rank < 0) return host_name();
  return "rank " + std::to_string(rank) + " on " + host_name();
}

}  // namespace dpunet
