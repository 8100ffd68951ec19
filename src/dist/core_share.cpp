// share_cores.
#include "dist/core_share.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

#include "dist/context.h"

namespace dpunet::dist {

int threads_per_rank(int cores, int local_ranks) {
  return std::max(1, cores / std::max(1, local_ranks));
}

int share_cores(const Context& context) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return 0;
  const int threads = threads_per_rank(static_cast<int>(std::thread::hardware_concurrency()), context.local_size());
  at::set_num_threads(threads);
  return threads;
}

}  // namespace dpunet::dist
