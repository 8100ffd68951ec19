// share_cores.
#include "dist/core_share.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <thread>

#include <ATen/Parallel.h>

#include "dist/context.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

int threads_per_rank(int cores, int local_ranks) {
  return std::max(1, cores / std::max(1, local_ranks));
}

int cpus_of_rank(const cpu_set_t& mine, const std::vector<cpu_set_t>& node_masks) {
  int sharing = 0;
  for (const cpu_set_t& other : node_masks) {
    cpu_set_t both;
    CPU_AND(&both, &mine, &other);
    sharing += CPU_COUNT(&both) > 0 ? 1 : 0;
  }
  return threads_per_rank(CPU_COUNT(&mine), sharing);
}

int quota_share(const std::optional<CgroupQuota>& mine, const std::vector<std::optional<CgroupQuota>>& node_quotas) {
  if (!mine) return std::numeric_limits<int>::max();
  int sharing = 0;
  for (const std::optional<CgroupQuota>& other : node_quotas) sharing += other && other->group == mine->group ? 1 : 0;
  return threads_per_rank(mine->cpus, sharing);
}

int cpu_share_on_node(MPI_Comm node) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof(mine), &mine) != 0 || CPU_COUNT(&mine) == 0) {
    CPU_ZERO(&mine);
    const int online = std::min<int>(CPU_SETSIZE, static_cast<int>(std::thread::hardware_concurrency()));
    for (int cpu = 0; cpu < std::max(1, online); ++cpu) CPU_SET(cpu, &mine);
  }
  return cpu_share_on_node(node, mine, cgroup_cpu_quota());
}

int cpu_share_on_node(MPI_Comm node, const cpu_set_t& mine, const std::optional<CgroupQuota>& quota) {
  int local_ranks = 1, node_rank = 0;
  MPI_CHECK(MPI_Comm_size(node, &local_ranks));
  MPI_CHECK(MPI_Comm_rank(node, &node_rank));
  std::vector<cpu_set_t> masks(static_cast<size_t>(local_ranks));
  MPI_CHECK(MPI_Allgather(&mine, sizeof(cpu_set_t), MPI_BYTE, masks.data(), sizeof(cpu_set_t), MPI_BYTE, node));
  // Quotas travel as (CPUs, a hash of the cgroup's path): ranks in one container share its.
  const std::array<uint64_t, 2> own{quota ? static_cast<uint64_t>(quota->cpus) : 0,
                                    quota ? std::hash<std::string>{}(quota->group) : 0};
  std::vector<uint64_t> gathered(2 * static_cast<size_t>(local_ranks));
  MPI_CHECK(MPI_Allgather(own.data(), 2, MPI_UINT64_T, gathered.data(), 2, MPI_UINT64_T, node));
  std::vector<std::optional<CgroupQuota>> quotas(static_cast<size_t>(local_ranks));
  for (size_t r = 0; r < quotas.size(); ++r)
    if (gathered[2 * r] > 0)
      quotas[r] = CgroupQuota{static_cast<int>(gathered[2 * r]), std::to_string(gathered[2 * r + 1])};
  return std::min(cpus_of_rank(mine, masks), quota_share(quotas[static_cast<size_t>(node_rank)], quotas));
}

int share_cores(const Context& context) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return 0;
  at::set_num_threads(context.cpu_share());
  return context.cpu_share();
}

}  // namespace dpunet::dist
