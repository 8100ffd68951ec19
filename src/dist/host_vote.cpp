// HostVote: MPI_Iallreduce on its own communicator, polled with a growing back-off, so
// a rank that arrives early neither spins on a core the others compute on nor waits
// forever.
#include "dist/host_vote.h"

#include <algorithm>
#include <thread>

#include "common/awake_time.h"
#include "common/process_label.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

struct HostVote::Ballot {
  int mine = 0;
  int any = 0;
  MPI_Request request = MPI_REQUEST_NULL;
};

HostVote::HostVote(const Context& context, std::chrono::milliseconds timeout)
    : timeout_(timeout), ballot_(std::make_unique<Ballot>()) {
  MPI_CHECK(MPI_Comm_dup(context.world(), &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
}

HostVote::~HostVote() {
  if (!ballot_) return;  // a vote stalled: the communicator is unusable
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

bool HostVote::any(bool mine) {
  DPUNET_CHECK(ballot_ != nullptr, "HostVote: an earlier vote never completed");
  ballot_->mine = mine ? 1 : 0;
  MPI_CHECK(MPI_Iallreduce(&ballot_->mine, &ballot_->any, 1, MPI_INT, MPI_MAX, comm_, &ballot_->request));
  AwakeTime waited;  // a suspended job's ranks resume together: that pause is no stall
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    int done = 0;
    const int status = MPI_Test(&ballot_->request, &done, MPI_STATUS_IGNORE);
    if (status == MPI_SUCCESS && done) return ballot_->any != 0;
    // From here on the request may still be live in MPI, which can write into the ballot.
    if (status != MPI_SUCCESS) {
      ballot_.release();
      DPUNET_FAIL("the per-step stop vote failed [", process_label(), "]: ", detail::mpi_describe(status));
    }
    if (waited.now() > timeout_) {
      ballot_.release();
      DPUNET_FAIL("the per-step stop vote has not completed after ", timeout_.count() / 1000.0, " s [", process_label(),
                  "]: another rank stopped or is stuck");
    }
    // Short sleeps: ranks normally arrive within microseconds of each other, and a
    // sleeping rank must not add much to the step.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(100));
  }
}

}  // namespace dpunet::dist
