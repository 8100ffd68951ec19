// The intra-op threads of ranks that share a machine.
#pragma once

#include <mpi.h>
#include <sched.h>

#include <vector>

namespace dpunet::dist {

class Context;

// Each of `local_ranks` ranks' share of `cores`: at least 1.
int threads_per_rank(int cores, int local_ranks);

// The CPUs of `mine` (this rank's affinity mask) that are this rank's share: divided
// among the ranks of `node_masks` (every rank's mask on this machine, this one's
// included) whose masks overlap it. Ranks left unbound all overlap and split the machine;
// ranks bound apart (mpirun's core or socket binding, srun -c) keep their own CPUs.
int cpus_of_rank(const cpu_set_t& mine, const std::vector<cpu_set_t>& node_masks);

// This rank's cpus_of_rank among the ranks of `node` (one machine's): collective over
// them. The CPUs are the affinity mask's (taskset, srun -c, a cpuset, mpirun's binding);
// all online ones where it cannot be read (more than a cpu_set_t holds).
int cpu_share_on_node(MPI_Comm node);
// The same for a given mask `mine` (the test's 64-CPU machine).
int cpu_share_on_node(MPI_Comm node, const cpu_set_t& mine);

// Ranks started side by side on one machine (a plain `mpirun -np N`) would each take
// every CPU for ATen's intra-op threads, N times over: each takes its share instead
// (Context::cpu_share), unless OMP_NUM_THREADS says how many (dpunet-launch sets it).
// Returns the threads set, 0 when OMP_NUM_THREADS decides.
int share_cores(const Context& context);

}  // namespace dpunet::dist
