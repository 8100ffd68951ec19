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
// the caller must keep them alive and never reuse the communicator. `timeout_hint` (what
// sets the timeout) is said in the message of a stall.
void wait_host_request(MPI_Request& request, std::chrono::milliseconds timeout, const std::string& what,
                       const std::string& timeout_hint = "");

// A duplicate of `world` for host-side exchanges (errors returned as codes), freed with
// its owner unless abandon() said an exchange on it never completed: MPI may still use it
// then, so it is left to the process's exit. Collective: every rank makes it alike.
class HostComm {
 public:
  explicit HostComm(MPI_Comm world);
  ~HostComm();
  HostComm(const HostComm&) = delete;
  HostComm& operator=(const HostComm&) = delete;

  MPI_Comm get() const { return comm_; }
  void abandon() { abandoned_ = true; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool abandoned_ = false;
};

}  // namespace dpunet::dist
