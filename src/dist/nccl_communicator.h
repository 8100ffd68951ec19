// Collectives on CUDA tensors over NCCL: one communicator per rank on the context's GPU,
// its own stream ordered after the caller's stream with events, and a watchdog thread
// that follows every collective to completion: an asynchronous NCCL error or a collective
// stalled past the timeout aborts the communicator, and the error, naming rank, host and
// operation, is raised at the caller's next call (or ends the process when the caller
// never comes back). Work::wait_on_stream() never blocks the host.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace dpunet::dist {

class Context;
struct NcclState;

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const Context& context, CommunicatorOptions options = {});
  ~NcclCommunicator() override;

  int rank() const override;
  int world_size() const override;
  std::string backend() const override { return "nccl"; }
  c10::Device device() const override;

  std::unique_ptr<Work> all_reduce_async(const at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(const at::Tensor& tensor, int root) override;
  std::unique_ptr<Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) override;
  void barrier() override;
  void raise_pending_failure() override;
  std::chrono::milliseconds timeout() const override;
  void set_timeout(std::chrono::milliseconds timeout) override;

 private:
  std::shared_ptr<NcclState> state_;
};

}  // namespace dpunet::dist
