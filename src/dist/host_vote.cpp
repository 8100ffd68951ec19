// HostVote: MPI_Iallreduce on its own communicator, waited for with a deadline.
#include "dist/host_vote.h"

#include "dist/host_request.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

struct HostVote::Ballot {
  int mine = 0;
  int any = 0;
  MPI_Request request = MPI_REQUEST_NULL;
};

HostVote::HostVote(const Context& context, std::chrono::milliseconds timeout, std::string timeout_hint)
    : comm_(context.world()),
      timeout_(timeout),
      timeout_hint_(std::move(timeout_hint)),
      ballot_(std::make_unique<Ballot>()) {}

HostVote::~HostVote() = default;

bool HostVote::any(bool mine) {
  DPUNET_CHECK(ballot_ != nullptr, "HostVote: an earlier vote never completed");
  ballot_->mine = mine ? 1 : 0;
  MPI_CHECK(MPI_Iallreduce(&ballot_->mine, &ballot_->any, 1, MPI_INT, MPI_MAX, comm_.get(), &ballot_->request));
  try {
    wait_host_request(ballot_->request, timeout_, "the per-step stop vote", timeout_hint_);
  } catch (...) {
    ballot_.release();  // the request may still be live in MPI, which can write into the ballot
    comm_.abandon();
    throw;
  }
  return ballot_->any != 0;
}

}  // namespace dpunet::dist
