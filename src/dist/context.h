// dpunet::dist::Context: one per process. Starts MPI, learns rank, world size and the
// node-local rank from MPI itself, picks this rank's device, and shuts MPI down.
// Passed by reference to whatever needs it; there is no global instance.
#pragma once

#include <mpi.h>

#include <string>

#include <c10/core/Device.h>

#include "common/error.h"

namespace dpunet::dist {

enum class DevicePreference { kAuto, kCpu, kCuda };

class Context {
 public:
  // Initialises MPI with MPI_THREAD_MULTIPLE requested and FUNNELED required. When MPI
  // is already initialised (an embedding program), it is used and left running.
  // Collective: every rank builds its Context at the same point (the ranks agree on
  // GPU or CPU). A rank that sees no GPU while others do (device auto) throws.
  Context(int* argc, char*** argv, DevicePreference device = DevicePreference::kAuto);
  explicit Context(DevicePreference device = DevicePreference::kAuto);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Rank and number of ranks on this node (MPI_Comm_split_type SHARED).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // The world rank of the first rank on this node: equal exactly for ranks that share a
  // node (MPI's shared-memory split), whatever their host names say.
  int node_leader() const { return node_leader_; }
  // The CPUs that are this rank's to use (dist::cpus_of_rank): its affinity mask's,
  // divided among the ranks of its machine whose masks overlap it.
  int cpu_share() const { return cpu_share_; }
  bool is_root() const { return rank_ == 0; }
  const std::string& host() const { return host_; }
  // cuda:(rank_among_same_gpus mod visible GPUs) when GPUs are visible and allowed, else
  // cpu: the local rank where every rank of the machine sees the same GPUs.
  const c10::Device& device() const { return device_; }
  // The MPI thread level granted; MPI_THREAD_MULTIPLE lets communicators use a thread.
  int thread_level() const { return thread_level_; }
  MPI_Comm world() const { return MPI_COMM_WORLD; }
  // True on every rank when `flag` is true on any: for agreeing to stop before any
  // communicator exists (a config that failed to parse on some nodes only).
  bool any_rank(bool flag) const;

 private:
  void init(int* argc, char*** argv, DevicePreference device);

  bool owns_mpi_ = false;
  int thread_level_ = 0;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int node_leader_ = 0;
  int cpu_share_ = 1;
  std::string host_;
  c10::Device device_{c10::kCPU};
};

// Ends every rank: for fatal errors once the message has been printed, so that one
// failing rank never leaves the others waiting in a collective. Returns when MPI is
// not running (then the caller just exits).
void abort_all_ranks(int exit_code);

// What main does with an error that reached it: one line naming rank and host on stderr,
// then abort_all_ranks(1). Returns 1 for main to return when MPI is not running.
int report_fatal_error(const char* message);
// What main does with an AgreedError: rank 0 (and a rank with something of its own to
// say) prints it, then every rank finalises MPI. Returns 1.
int report_agreed_error(const AgreedError& error);
// The line report_fatal_error prints, "dpunet: error (LABEL): MESSAGE", to stderr, with
// no MPI call: for threads that may not call MPI.
void print_fatal_error(const std::string& label, const std::string& message);

}  // namespace dpunet::dist
