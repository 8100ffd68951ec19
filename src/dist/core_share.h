// The intra-op threads of ranks that share a machine.
#pragma once

namespace dpunet::dist {

// Each of `local_ranks` ranks' share of `cores`: at least 1.
int threads_per_rank(int cores, int local_ranks);

// Ranks started side by side on one machine (a plain `mpirun -np N`) would each take
// every core for ATen's intra-op threads, N times over: each takes its share of the CPUs
// this process may run on instead (at least 1), unless OMP_NUM_THREADS says how many
// (dpunet-launch sets it). Returns the threads set, 0 when OMP_NUM_THREADS decides.
// Where the CPUs cannot be counted (more than a cpu_set_t holds), all online CPUs.
// `local_ranks`: the ranks on this machine (Context::local_size).
int share_cores(int local_ranks);

}  // namespace dpunet::dist
