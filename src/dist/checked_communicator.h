// distributed.check_collectives: before each collective the ranks compare what they are
// about to issue (operation, dtype, element count, shape, root or reduction, and how many
// collectives came before it), on the host over MPI. A rank that issues an extra
// collective, or another one, or another tensor, stops every rank with each rank's view,
// where it would otherwise hang the job or silently mix unrelated data. As DDP's debug
// mode and Horovod's coordinator do; it costs one small host exchange per collective and
// waits the collective's launch on it, so it is for finding such a bug, not for speed.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>

#include "dist/communicator.h"
#include "dist/host_request.h"

namespace dpunet::dist {

class Context;

class CheckedCommunicator : public Communicator {
 public:
  // Collective: every rank wraps its communicator at the same point.
  // `timeout_hint`: said when a check stalls (CommunicatorOptions::timeout_hint).
  CheckedCommunicator(const Context& context, std::shared_ptr<Communicator> inner, std::string timeout_hint = "");
  ~CheckedCommunicator() override;

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::string backend() const override { return inner_->backend(); }
  c10::Device device() const override { return inner_->device(); }

  std::unique_ptr<Work> all_reduce_async(const at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(const at::Tensor& tensor, int root) override;
  std::unique_ptr<Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) override;
  void barrier() override;

  std::chrono::milliseconds timeout() const override { return inner_->timeout(); }
  void set_timeout(std::chrono::milliseconds timeout) override { inner_->set_timeout(timeout); }
  void raise_pending_failure() override { inner_->raise_pending_failure(); }

  // What a rank is about to issue, as the ranks compare it: the first dimensions in full
  // (for the message), all of them in the hash.
  enum Field { kSequence, kOperation, kDtype, kElements, kParameter, kDims, kDim0, kShapeHash = kDim0 + 4, kFields };
  using Fingerprint = std::array<int64_t, kFields>;

 private:
  // Throws on every rank, with every rank's view, unless all ranks are about to issue
  // the same collective. Called with mutex_ held: check and launch keep one order.
  void check(const Fingerprint& mine);
  Fingerprint fingerprint(int operation, const at::Tensor& tensor, int64_t parameter);

  std::shared_ptr<Communicator> inner_;
  HostComm comm_;  // for the fingerprints alone
  std::mutex mutex_;
  int64_t issued_ = 0;  // collectives checked so far
  // Owned until an exchange stalls; then left to MPI, which may still write into it.
  struct Exchange;
  std::unique_ptr<Exchange> exchange_;
  std::string timeout_hint_;
};

}  // namespace dpunet::dist
