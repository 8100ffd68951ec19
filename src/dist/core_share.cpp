// share_cores.
#include "dist/core_share.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
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

int cpu_share_on_node(MPI_Comm node) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof(mine), &mine) != 0 || CPU_COUNT(&mine) == 0) {
    CPU_ZERO(&mine);
    const int online = std::min<int>(CPU_SETSIZE, static_cast<int>(std::thread::hardware_concurrency()));
    for (int cpu = 0; cpu < std::max(1, online); ++cpu) CPU_SET(cpu, &mine);
  }
  return cpu_share_on_node(node, mine);
}

int cpu_share_on_node(MPI_Comm node, const cpu_set_t& mine) {
  int local_ranks = 1;
  MPI_CHECK(MPI_Comm_size(node, &local_ranks));
  std::vector<cpu_set_t> masks(static_cast<size_t>(local_ranks));
  MPI_CHECK(MPI_Allgather(&mine, sizeof(cpu_set_t), MPI_BYTE, masks.data(), sizeof(cpu_set_t), MPI_BYTE, node));
  return cpus_of_rank(mine, masks);
}

int share_cores(const Context& context) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return 0;
  at::set_num_threads(context.cpu_share());
  return context.cpu_share();
}

}  // namespace dpunet::dist
