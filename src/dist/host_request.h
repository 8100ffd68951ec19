// Waiting on the host for a nonblocking MPI collective, with a deadline: polled with a
// growing back-off, so a rank that arrives early neither spins on a core the others
// compute on nor waits forever for a rank that never comes.
#pragma once

#include <mpi.h>

#include <chrono>
#include <string>

namespace dpunet::dist {

// Returns once `request` completed. Throws naming `what` and this rank when MPI reports
// a failure or when `timeout` passes first (time the job spends suspended does not
// count); the request may then still be live in MPI, which can write into its buffers:
// the caller must keep them alive and never reuse the communicator.
void wait_host_request(MPI_Request& request, std::chrono::milliseconds timeout, const std::string& what);

}  // namespace dpunet::dist
