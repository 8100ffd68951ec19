// wait_host_request: MPI_Test with sleeps that double up to 100 us.
#include "dist/host_request.h"

#include <algorithm>
#include <thread>

#include "common/awake_time.h"
#include "common/process_label.h"
#include "common/text.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

void wait_host_request(MPI_Request& request, std::chrono::milliseconds timeout, const std::string& what,
                       const std::string& timeout_hint) {
  AwakeTime waited;  // a suspended job's ranks resume together: that pause is no stall
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    int done = 0;
    const int status = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (status == MPI_SUCCESS && done) return;
    if (status != MPI_SUCCESS) DPUNET_FAIL(what, " failed [", process_label(), "]: ", detail::mpi_describe(status));
    if (waited.now() > timeout) {
      DPUNET_FAIL(what, " has not completed after ", timeout.count() / 1000.0, " s [", process_label(),
                  "]: another rank stopped or is stuck", parenthesised(timeout_hint));
    }
    // Short sleeps: ranks normally arrive within microseconds of each other, and a
    // sleeping rank must not add much to the step.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(100));
  }
}

HostComm::HostComm(MPI_Comm world) {
  MPI_CHECK(MPI_Comm_dup(world, &comm_));
  const int status = MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  if (status != MPI_SUCCESS) {
    MPI_Comm_free(&comm_);
    MPI_CHECK(status);
  }
}

HostComm::~HostComm() {
  if (abandoned_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

}  // namespace dpunet::dist
