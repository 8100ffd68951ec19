// Who this process is, for error messages and logs: "rank 1 on node7" once MPI is up,
// the host name alone before that.
#pragma once

#include <string>

namespace dpunet {

std::string host_name();
// World rank when MPI is initialised and not yet finalised, else -1.
int world_rank_or_unknown();
// Called by dist::Context once it knows the world rank, so that world_rank_or_unknown
// makes no MPI call from threads that may not make one.
void remember_world_rank(int rank);
// "rank R on HOST", or "HOST" when the rank is not known.
std::string process_label();

}  // namespace dpunet
