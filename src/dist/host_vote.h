// A yes/no agreement over all ranks, made on the host with MPI: it launches no device
// work, so a GPU step never waits for it (the train loop asks it every step whether any
// rank was signalled to stop). Waits with a deadline: a rank that never votes is an error
// naming this rank, not a hang.
#pragma once

#include <mpi.h>

#include <chrono>
#include <memory>

#include "dist/context.h"
#include "dist/host_request.h"

namespace dpunet::dist {

class HostVote {
 public:
  // Collective: every rank constructs it at the same point.
  // `timeout_hint`: what sets the timeout, said when a vote stalls.
  HostVote(const Context& context, std::chrono::milliseconds timeout, std::string timeout_hint = "");
  ~HostVote();
  HostVote(const HostVote&) = delete;
  HostVote& operator=(const HostVote&) = delete;

  // True on every rank when any rank passes true.
  bool any(bool mine);

  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  struct Ballot;
  HostComm comm_;
  std::chrono::milliseconds timeout_;
  std::string timeout_hint_;
  // Owned until a vote stalls; then released to MPI, which may still write into it.
  std::unique_ptr<Ballot> ballot_;
};

}  // namespace dpunet::dist
