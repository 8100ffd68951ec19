// The CPUs a cgroup quota grants this process (docker --cpus, a Kubernetes CPU limit).
// An affinity mask does not show a quota: threads beyond it only wait for their turn.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace dpunet {

struct CgroupQuota {
  int cpus = 0;       // the quota over its period, rounded up
  std::string group;  // the cgroup it is set on: the processes inside share it
};

// The quota over the cgroup file system mounted at `root`, for a process whose
// /proc/self/cgroup reads `membership`. cgroup v2: the smallest cpu.max ("QUOTA PERIOD";
// "max PERIOD" for none) of the process's cgroup and those above it (a container sees its
// own at the mount's root); else cgroup v1's cpu.cfs_quota_us over cpu.cfs_period_us
// (-1: none). Nothing when no quota is set or none can be read.
std::optional<CgroupQuota> cgroup_cpu_quota(const std::filesystem::path& root, const std::string& membership);

// This process's: /sys/fs/cgroup (DPUNET_CGROUP_ROOT where set, as dpunet-launch reads
// it) and /proc/self/cgroup.
std::optional<CgroupQuota> cgroup_cpu_quota();

}  // namespace dpunet
