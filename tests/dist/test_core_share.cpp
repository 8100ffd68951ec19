// share_cores: ranks side by side on one machine divide the CPUs they may use.
#include "support/catch.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <vector>

#include <ATen/Parallel.h>

#include "dist/context.h"
#include "dist/core_share.h"
#include "support/mpi_test_context.h"

using dpunet::dist::cpus_of_rank;
using dpunet::dist::threads_per_rank;

namespace {

cpu_set_t cpus(int first, int count) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu = first; cpu < first + count; ++cpu) CPU_SET(cpu, &set);
  return set;
}

}  // namespace

TEST_CASE("each rank on a machine takes its share of the cores, at least one", "[dist]") {
  CHECK(threads_per_rank(16, 1) == 16);
  CHECK(threads_per_rank(16, 4) == 4);
  CHECK(threads_per_rank(16, 3) == 5);
  CHECK(threads_per_rank(2, 3) == 1);
  CHECK(threads_per_rank(0, 2) == 1);  // hardware_concurrency may not know
  CHECK(threads_per_rank(8, 0) == 8);
}

TEST_CASE("ranks split the CPUs their masks share and keep those they were bound to alone", "[dist]") {
  // Unbound (or one taskset around the job): four ranks split 64 CPUs.
  const cpu_set_t all = cpus(0, 64);
  CHECK(cpus_of_rank(all, {all, all, all, all}) == 16);
  // mpirun binding two ranks to each of two 32-CPU sockets: 16 each, not 32 / 4.
  const cpu_set_t socket0 = cpus(0, 32), socket1 = cpus(32, 32);
  CHECK(cpus_of_rank(socket0, {socket0, socket0, socket1, socket1}) == 16);
  CHECK(cpus_of_rank(socket1, {socket0, socket0, socket1, socket1}) == 16);
  // srun -n 4 -c 8: each rank its own 8.
  const std::vector<cpu_set_t> apart{cpus(0, 8), cpus(8, 8), cpus(16, 8), cpus(24, 8)};
  CHECK(cpus_of_rank(apart[2], apart) == 8);
  // Bound to one core each (mpirun -np 2): one thread.
  CHECK(cpus_of_rank(cpus(1, 1), {cpus(0, 1), cpus(1, 1)}) == 1);
}

TEST_CASE("ranks under one cgroup CPU quota split it, and a quota elsewhere does not count", "[dist]") {
  using dpunet::CgroupQuota;
  using dpunet::dist::quota_share;
  const CgroupQuota pod{6, "/kubepods/pod1"}, other{16, "/kubepods/pod2"};
  CHECK(quota_share(pod, {pod, pod, other}) == 3);
  CHECK(quota_share(other, {pod, pod, other}) == 16);
  CHECK(quota_share(pod, {pod, std::nullopt}) == 6);
  CHECK(quota_share(CgroupQuota{1, "/"}, {CgroupQuota{1, "/"}, CgroupQuota{1, "/"}}) == 1);
  CHECK(quota_share(std::nullopt, {pod, pod}) == std::numeric_limits<int>::max());
}

TEST_CASE("ranks started by a plain mpirun share the machine's CPUs unless OMP_NUM_THREADS says", "[mpi]") {
  auto& context = dpunet::test::mpi_context();
  const int before = at::get_num_threads();
  // The test launcher binds no rank: every mask is the whole machine's.
  cpu_set_t mask;
  REQUIRE(sched_getaffinity(0, sizeof(mask), &mask) == 0);
  CHECK(context.local_size() == context.world_size());
  // Capped by this machine's cgroup quota where it has one, which every rank shares.
  const auto quota = dpunet::cgroup_cpu_quota();
  CHECK(context.cpu_share() ==
        std::min(threads_per_rank(CPU_COUNT(&mask), context.world_size()),
                 quota ? threads_per_rank(quota->cpus, context.world_size()) : std::numeric_limits<int>::max()));
  // On a machine of 64 CPUs (this one's few would floor every share at 1): each of the
  // ranks gathered takes its part.
  cpu_set_t machine;
  CPU_ZERO(&machine);
  for (int cpu = 0; cpu < 64; ++cpu) CPU_SET(cpu, &machine);
  CHECK(dpunet::dist::cpu_share_on_node(context.world(), machine, std::nullopt) == 64 / context.world_size());
  // Inside a container of 8 CPUs (docker --cpus 8) they split its quota instead.
  const dpunet::CgroupQuota container{8, "/"};
  CHECK(dpunet::dist::cpu_share_on_node(context.world(), machine, container) == 8 / context.world_size());
  const int set = dpunet::dist::share_cores(context);
  if (std::getenv("OMP_NUM_THREADS") != nullptr) {
    CHECK(set == 0);
    CHECK(at::get_num_threads() == before);
  } else {
    CHECK(set == context.cpu_share());
    CHECK(at::get_num_threads() == set);
  }
  at::set_num_threads(before);
}
