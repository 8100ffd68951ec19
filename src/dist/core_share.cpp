// share_cores.
#include "dist/core_share.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

namespace dpunet::dist {
namespace {

// The CPUs this process may run on (taskset, srun -c, docker --cpuset-cpus), as ATen's
// own default counts them; all online CPUs where the mask cannot be read.
int allowed_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0 && CPU_COUNT(&mask) > 0) return CPU_COUNT(&mask);
  return static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace

int threads_per_rank(int cores, int local_ranks) {
  return std::max(1, cores / std::max(1, local_ranks));
}

int share_cores(int local_ranks) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return 0;
  const int threads = threads_per_rank(allowed_cpus(), local_ranks);
  at::set_num_threads(threads);
  return threads;
}

}  // namespace dpunet::dist
