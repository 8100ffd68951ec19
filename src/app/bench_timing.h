// Timing helpers shared by the multi-rank benchmarks: every rank times the same region
// and the slowest rank's time is the one reported, since a collective is as slow as it.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "dist/mpi_check.h"

namespace dpunet::app {

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double slowest_rank(double ms) {
  double slowest = 0;
  MPI_CHECK(MPI_Allreduce(&ms, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  return slowest;
}

inline double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  // An even count's median is the mean of its middle two (of two steps, not the slower).
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// nccl-tests' bus bandwidth of an all-reduce, in GB/s: algbw * 2(n-1)/n.
inline double allreduce_busbw_gbps(double bytes, double ms, int world) {
  if (ms <= 0 || world < 2) return 0;
  return bytes / (ms * 1e6) * 2.0 * (world - 1) / world;
}

}  // namespace dpunet::app
