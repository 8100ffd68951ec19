// The collective operations data-parallel training needs, independent of the transport:
// NcclCommunicator for CUDA tensors, MpiCommunicator for CPU tensors. Every rank must
// issue the same operations in the same order.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace at {
class Tensor;
}

namespace dpunet::dist {

enum class ReduceOp { kSum, kAvg };

// A collective in flight. wait() returns once the result is in the tensor and visible to
// the caller's following work, host code included; it throws dpunet::Error on failure or
// timeout.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // Orders the caller's following device work (the current CUDA stream) after the
  // collective without blocking the host; the backend watches it and raises a failure or
  // stall at a later call. Host code must not read the result before it syncs the
  // stream. On CPU backends it is wait().
  virtual void wait_on_stream() { wait(); }
};

struct CommunicatorOptions {
  // A collective that has not finished after this long is reported as a stall (naming
  // rank, host and operation) instead of hanging the job.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // Backends that watch collectives from a thread of their own (NCCL): how long the
  // caller's thread has to raise such a failure before the watchdog ends the process
  // itself, because the caller is blocked on the stalled work.
  std::chrono::milliseconds abort_grace{std::chrono::seconds(30)};
  // Compare every collective across ranks before it is launched (CheckedCommunicator,
  // distributed.check_collectives): slower, for finding a rank that issues others.
  bool check_collectives = false;
  // Said in a stall's message: what sets the timeout, in the caller's terms (a config key).
  std::string timeout_hint;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  // Where tensors passed to this communicator must live.
  virtual c10::Device device() const = 0;

  // In place, contiguous tensors. The tensor must not be touched until wait() returns.
  virtual std::unique_ptr<Work> all_reduce_async(const at::Tensor& tensor, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> broadcast_async(const at::Tensor& tensor, int root) = 0;
  // output [world_size * input.numel()] holds rank r's input at offset r * input.numel().
  virtual std::unique_ptr<Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) = 0;
  virtual void barrier() = 0;

  // How long a collective started from now on may take before it counts as stalled
  // (CommunicatorOptions::timeout at first). Backends without a timeout keep none.
  virtual std::chrono::milliseconds timeout() const { return std::chrono::milliseconds::zero(); }
  virtual void set_timeout(std::chrono::milliseconds /*timeout*/) {}
  // Throws the failure or stall of a collective waited on with wait_on_stream(), once the
  // backend has seen it. A host read that syncs the device returns only after such a
  // collective completed or was seen failing, so calling this after the read tells whether
  // the values can be trusted (a checkpoint's weights). No-op where wait() always blocks.
  virtual void raise_pending_failure() {}

  void all_reduce(const at::Tensor& tensor, ReduceOp op);
  void broadcast(const at::Tensor& tensor, int root);
  void all_gather(const at::Tensor& input, const at::Tensor& output);
  // Small values, for agreement checks: element r is rank r's value.
  std::vector<int64_t> all_gather_values(int64_t value);
  // Every rank gets root's string.
  std::string broadcast_string(const std::string& text, int root);
};

// The least time start-up collectives get (NCCL's own start-up, the trainer's set-up).
inline constexpr std::chrono::minutes kStartupTimeout{5};

// Raises a communicator's (or a HostVote's) timeout to at least `at_least` for its
// lifetime: start-up, where ranks meet after reading datasets and checkpoints at their
// own pace, may take longer than any collective of a training step. Work started under
// it keeps the longer timeout to its end.
template <typename Timed>
class LongerTimeout {
 public:
  LongerTimeout(Timed& timed, std::chrono::milliseconds at_least) : timed_(timed), saved_(timed.timeout()) {
    if (saved_ < at_least) timed_.set_timeout(at_least);
  }
  ~LongerTimeout() { timed_.set_timeout(saved_); }
  LongerTimeout(const LongerTimeout&) = delete;
  LongerTimeout& operator=(const LongerTimeout&) = delete;

 private:
  Timed& timed_;
  std::chrono::milliseconds saved_;
};

}  // namespace dpunet::dist
