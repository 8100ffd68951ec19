// The intra-op threads of ranks that share a machine.
#pragma once

namespace dpunet::dist {

class Context;

// Each of `local_ranks` ranks' share of `cores`: at least 1.
int threads_per_rank(int cores, int local_ranks);

// Ranks started side by side on one machine (a plain `mpirun -np N`) would each take
// every core for ATen's intra-op threads, N times over: each takes its share instead
// (at least 1), unless OMP_NUM_THREADS says how many (dpunet-launch sets it). Returns the
// threads set, 0 when OMP_NUM_THREADS decides.
int share_cores(const Context& context);

}  // namespace dpunet::dist
