// share_cores: ranks side by side on one machine divide its cores between them.
#include "support/catch.h"

#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

#include "dist/context.h"
#include "dist/core_share.h"
#include "support/mpi_test_context.h"

using dpunet::dist::threads_per_rank;

TEST_CASE("each rank on a machine takes its share of the cores, at least one", "[dist]") {
  CHECK(threads_per_rank(16, 1) == 16);
  CHECK(threads_per_rank(16, 4) == 4);
  CHECK(threads_per_rank(16, 3) == 5);
  CHECK(threads_per_rank(2, 3) == 1);
  CHECK(threads_per_rank(0, 2) == 1);  // hardware_concurrency may not know
  CHECK(threads_per_rank(8, 0) == 8);
}

TEST_CASE("ranks started by a plain mpirun share the machine's cores unless OMP_NUM_THREADS says", "[mpi]") {
  auto& context = dpunet::test::mpi_context();
  const int before = at::get_num_threads();
  const int set = dpunet::dist::share_cores(context);
  if (std::getenv("OMP_NUM_THREADS") != nullptr) {
    CHECK(set == 0);
    CHECK(at::get_num_threads() == before);
  } else {
    // Every rank of this test runs on this machine.
    CHECK(context.local_size() == context.world_size());
    CHECK(set == threads_per_rank(static_cast<int>(std::thread::hardware_concurrency()), context.world_size()));
    CHECK(at::get_num_threads() == set);
  }
  at::set_num_threads(before);
}
