// Rank and host for messages. The world rank never changes once MPI runs, so the one
// dist::Context learned is kept: messages from other threads (autograd's, the
// communicators') then need no MPI call, which MPI_THREAD_FUNNELED would not allow.
// MPI_Initialized and MPI_Finalized may be called from any thread.
#include "common/process_label.h"

#include <limits.h>
#include <mpi.h>
#include <unistd.h>

#include <atomic>

namespace dpunet {

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

namespace {
std::atomic<int> known_rank{-1};
}  // namespace

void remember_world_rank(int rank) {
  known_rank = rank;
}

int world_rank_or_unknown() {
  int initialized = 0, finalized = 0;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return -1;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return -1;
  if (known_rank >= 0) return known_rank;
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
