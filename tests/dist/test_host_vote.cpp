// HostVote: any rank's yes reaches every rank, and a rank that never votes is a clear
// error on the others, not a hang.
#include "support/catch.h"

#include <chrono>
#include <thread>

#include "dist/communicator.h"
#include "dist/host_vote.h"
#include "support/mpi_test_context.h"

using namespace dpunet;
using namespace std::chrono_literals;

TEST_CASE("A stop vote is yes on every rank when any rank says yes", "[mpi]") {
  auto& context = test::mpi_context();
  dist::HostVote vote(context, 30s);
  CHECK_FALSE(vote.any(false));
  CHECK(vote.any(context.rank() == context.world_size() - 1));
  CHECK_FALSE(vote.any(false));  // one vote does not leak into the next
}

TEST_CASE("A longer timeout lets a rank vote late, as after a slow first step, and the old one comes back", "[mpi]") {
  auto& context = test::mpi_context();
  if (context.world_size() < 2) return;
  dist::HostVote vote(context, 300ms);
  {
    const dist::LongerTimeout first_step(vote, 20s);
    CHECK(vote.timeout() == 20s);
    // The last rank arrives 2 s late: past the steps' timeout.
    if (context.rank() == context.world_size() - 1) std::this_thread::sleep_for(2s);
    CHECK_FALSE(vote.any(false));
  }
  CHECK(vote.timeout() == 300ms);
  CHECK(vote.any(context.rank() == 0));
}

TEST_CASE("A stop vote that another rank never joins times out naming this rank", "[mpi]") {
  auto& context = test::mpi_context();
  if (context.world_size() < 2) return;
  const bool late = context.rank() == 0;
  dist::HostVote vote(context, late ? 30s : 300ms);
  if (late) {
    std::this_thread::sleep_for(3000ms);  // the others give up first, even on a loaded machine
    CHECK(vote.any(false));               // their abandoned yes still arrives
  } else {
    CHECK_THROWS_WITH(vote.any(true),
                      HasSubstr("stop vote has not completed") && HasSubstr("rank " + std::to_string(context.rank())));
    // A later call refuses instead of reusing the stuck vote.
    CHECK_THROWS_WITH(vote.any(true), HasSubstr("never completed"));
  }
  // Every rank meets here, which also lets MPI finish the abandoned votes.
  MPI_Barrier(context.world());
}
