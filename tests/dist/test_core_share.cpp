// share_cores: ranks side by side on one machine divide the CPUs they may use.
#include "support/catch.h"

#include <sched.h>

#include <cstdlib>

#include <ATen/Parallel.h>

#include "dist/core_share.h"

using dpunet::dist::threads_per_rank;

TEST_CASE("each rank on a machine takes its share of the cores, at least one", "[dist]") {
  CHECK(threads_per_rank(16, 1) == 16);
  CHECK(threads_per_rank(16, 4) == 4);
  CHECK(threads_per_rank(16, 3) == 5);
  CHECK(threads_per_rank(2, 3) == 1);
  CHECK(threads_per_rank(0, 2) == 1);  // hardware_concurrency may not know
  CHECK(threads_per_rank(8, 0) == 8);
}

TEST_CASE("ranks share the CPUs their affinity mask allows, unless OMP_NUM_THREADS says", "[dist]") {
  const int before = at::get_num_threads();
  cpu_set_t all;
  REQUIRE(sched_getaffinity(0, sizeof(all), &all) == 0);
  // As under `taskset -c <one CPU>` or `srun -c 1`: this thread may run on one CPU.
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &all)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
  const int on_one = dpunet::dist::share_cores(/*local_ranks=*/1);
  REQUIRE(sched_setaffinity(0, sizeof(all), &all) == 0);
  const int on_all_mask = dpunet::dist::share_cores(/*local_ranks=*/2);
  if (std::getenv("OMP_NUM_THREADS") != nullptr) {
    CHECK(on_one == 0);
    CHECK(on_all_mask == 0);
  } else {
    CHECK(on_one == 1);
    CHECK(on_all_mask == threads_per_rank(CPU_COUNT(&all), 2));
    CHECK(at::get_num_threads() == on_all_mask);
  }
  at::set_num_threads(before);
}
