// Collectives on CPU tensors over MPI: the backend for CPU training and for the
// multi-rank tests. With MPI_THREAD_MULTIPLE, operations run in order on one background
// thread, so an all-reduce started during backward proceeds while backward goes on;
// otherwise each runs to completion when it is issued.
#pragma once

#include <mpi.h>

#include <memory>
#include <thread>

#include "dist/communicator.h"
#include "dist/stall_watchdog.h"

namespace dpunet::dist {

class Context;
class HalfSumOps;
struct MpiQueue;

struct MpiCommunicatorOptions : CommunicatorOptions {
  // Run operations on a background thread (needs MPI_THREAD_MULTIPLE; ignored without).
  bool background_thread = true;
  // All-reduces larger than this go as several MPI_Allreduce calls of at most this many
  // bytes: on shared memory, messages that stay in cache reduce several times faster
  // than one large one (docs/benchmarks.md). 0: never split.
  int64_t max_message_bytes = int64_t{4} << 20;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(const Context& context, MpiCommunicatorOptions options = {});
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string backend() const override { return "mpi"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  bool uses_background_thread() const { return worker_.joinable(); }

  std::unique_ptr<Work> all_reduce_async(const at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(const at::Tensor& tensor, int root) override;
  std::unique_ptr<Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) override;
  void barrier() override;
  std::chrono::milliseconds timeout() const override { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }

 private:
  MpiCommunicatorOptions options_;
  std::chrono::milliseconds timeout_;  // of the collectives started now (the caller's thread only)
  MPI_Comm comm_ = MPI_COMM_NULL;      // a duplicate: dpunet's traffic never mixes with others'
  int rank_ = 0;
  int world_size_ = 1;
  std::unique_ptr<HalfSumOps> half_ops_;
  std::shared_ptr<MpiQueue> queue_;
  std::thread worker_;
  // Without the worker thread (no MPI_THREAD_MULTIPLE), collectives block the caller
  // inside MPI, where no timeout of ours can reach: this watchdog ends the process instead.
  std::unique_ptr<StallWatchdog> inline_watchdog_;
};

}  // namespace dpunet::dist
