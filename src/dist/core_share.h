// The intra-op threads of ranks that share a machine.
#pragma once

#include <mpi.h>
#include <sched.h>

#include <optional>
#include <vector>

#include "common/cgroup_quota.h"

namespace dpunet::dist {

class Context;

// Each of `local_ranks` ranks' share of `cores`: at least 1.
int threads_per_rank(int cores, int local_ranks);

// The CPUs of `mine` (this rank's affinity mask) that are this rank's share: divided
// among the ranks of `node_masks` (every rank's mask on this machine, this one's
// included) whose masks overlap it. Ranks left unbound all overlap and split the machine;
// ranks bound apart (mpirun's core or socket binding, srun -c) keep their own CPUs.
int cpus_of_rank(const cpu_set_t& mine, const std::vector<cpu_set_t>& node_masks);

// This rank's part of a cgroup CPU quota `mine`: divided among the ranks of `node_quotas`
// (every rank's on this machine, this one's included) under the same cgroup. No quota:
// no limit (int's largest).
int quota_share(const std::optional<CgroupQuota>& mine, const std::vector<std::optional<CgroupQuota>>& node_quotas);

// This rank's cpus_of_rank among the ranks of `node` (one machine's), capped by its
// quota_share: collective over them. The CPUs are the affinity mask's (taskset, srun -c,
// a cpuset, mpirun's binding); all online ones where it cannot be read (more than a
// cpu_set_t holds). The quota is its cgroup's (docker --cpus: a plain mpirun inside a
// 4-CPU container on a 64-CPU host would otherwise run 32 threads per rank).
int cpu_share_on_node(MPI_Comm node);
// The same for a given mask `mine` and quota (the test's 64-CPU machine).
int cpu_share_on_node(MPI_Comm node, const cpu_set_t& mine, const std::optional<CgroupQuota>& quota);

// Ranks started side by side on one machine (a plain `mpirun -np N`) would each take
// every CPU for ATen's intra-op threads, N times over: each takes its share instead
// (Context::cpu_share), unless OMP_NUM_THREADS says how many (dpunet-launch sets it).
// Returns the threads set, 0 when OMP_NUM_THREADS decides.
int share_cores(const Context& context);

}  // namespace dpunet::dist
