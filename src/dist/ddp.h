// DistributedDataParallel for any torch::nn::Module: the same weights on every rank at
// the start, and after each backward the gradients averaged over ranks, all-reduced in
// buckets that start while backward is still running.
//
//   DistributedDataParallel ddp(model, comm);
//   loss.backward();
//   ddp.synchronize();   // waits for the buckets; gradients are now averaged
//   optimizer.step();
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "dist/bucket_plan.h"
#include "dist/communicator.h"

namespace dpunet::dist {

enum class WireDtype { kNone, kBFloat16, kFloat16 };

struct DdpOptions {
  BucketCaps bucket_caps;
  // Send floating gradients as bf16/fp16 (divided by the world size before the cast, so
  // the sum overflows only where the average would); they are widened back on arrival.
  // Halves the bytes on the wire. bf16 keeps float32's range; fp16 makes an average
  // beyond 65504 inf (fp16 training's loss scaler skips such a step; without it, the
  // optimizer takes it) and loses a gradient below ~6e-8 x world size to underflow.
  WireDtype wire_dtype = WireDtype::kNone;
  // Copy rank 0's buffers (BatchNorm running statistics) to every rank after each step.
  bool broadcast_buffers = true;
  // A parameter that got no gradient in a synchronised step (neither in its last
  // micro-batch nor in an earlier one under no_sync) is an error naming it, unless this
  // is set; then its gradient counts as zero. Such a parameter holds its bucket (and the
  // buckets after it) back until synchronize(): when ranks use different parameters,
  // other collectives issued during backward (SyncBatchNorm's) would then meet the
  // buckets' in a different order on different ranks. Use it with such layers only when
  // every rank leaves the same parameters unused. The same holds, with or without this
  // option, for a parameter used only in an earlier micro-batch of an accumulated step
  // (its gradient is known, but it is ready only in synchronize()). dpunet's U-Net uses
  // every parameter in every forward, so neither happens there.
  bool allow_unused_parameters = false;
  // After the first synchronised step, lay the buckets out again in the order gradients
  // really became ready (rank 0's order, so every rank agrees), as PyTorch's DDP does:
  // the registration order only guesses it.
  bool rebuild_buckets = true;
  // At world size 1 a rank's gradients already are the average: no collective is
  // launched and none is waited for, so a single-GPU step never blocks the host. Set
  // this to run the collectives anyway (tests and benchmarks of the reducer itself).
  bool communicate_when_alone = false;
};

class DistributedDataParallel {
 public:
  // Checks that every rank holds the same parameter and buffer names and shapes (an
  // error on every rank naming the first difference), then copies rank 0's values.
  DistributedDataParallel(std::shared_ptr<torch::nn::Module> module, Communicator& comm, DdpOptions options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  torch::nn::Module& module() { return *module_; }
  Communicator& communicator() { return comm_; }

  // After backward, before the optimizer step: starts the buckets still waiting, waits
  // for all, and (when asked) broadcasts buffers. Gradients are then equal on all ranks
  // for the work queued next; on a GPU the host does not block (Work::wait_on_stream), so
  // sync the stream before reading them on the host.
  void synchronize();
  // Zeroes the gradients in place, keeping them views of the buckets (cheaper than
  // set-to-none, which makes the next backward copy each gradient into its bucket).
  void zero_grad();

  // While alive, backward accumulates gradients locally without communicating; the next
  // synchronised backward reduces the sum. For gradient accumulation over micro-batches.
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
  };
  NoSync no_sync() { return NoSync(*this); }

  // Parameter names per bucket, in launch order (for logs and tests). The layout can
  // change once, at the end of the first synchronize() (see DdpOptions::rebuild_buckets).
  std::vector<std::vector<std::string>> bucket_parameter_names() const;
  // Elements per bucket, in launch order.
  std::vector<int64_t> bucket_numels() const;

  // The order the buckets are laid out in: parameter indices (registration order), for a
  // checkpoint. A gradient's place in its bucket decides the order in which a ring
  // all-reduce adds the ranks' values (with 3 or more ranks), so a resumed run reduces
  // its first step bit for bit as the uninterrupted run did only with the same layout.
  std::vector<int64_t> bucket_order() const;
  // Lays the buckets out in `order` (another run's bucket_order()) before any step; false,
  // changing nothing, when it is not an order of this model's parameters. The first
  // synchronised step still lays them out again if gradients become ready in another order.
  bool restore_bucket_order(const std::vector<int64_t>& order);

  // Called by the gradient hooks; public for them only.
  void on_gradient_ready(size_t param);

 private:
  struct Bucket;
  void build_buckets(const std::vector<size_t>& order);
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  void bind_gradient(size_t param);
  void finish_unused_parameters();
  void register_hooks();
  void rebuild_in_ready_order();
  bool communicates() const { return comm_.world_size() > 1 || options_.communicate_when_alone; }

  std::shared_ptr<torch::nn::Module> module_;
  Communicator& comm_;
  DdpOptions options_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;     // param -> bucket
  std::vector<torch::Tensor> views_;  // param -> its slice of the bucket, shaped like it
  std::vector<bool> ready_;
  std::vector<bool> accumulated_;    // got a gradient under no_sync since the last synchronize()
  std::vector<size_t> plan_order_;   // the order the current buckets were planned in
  std::vector<size_t> ready_order_;  // this step's gradients, in the order they arrived
  bool rebuilt_ = false;
  size_t next_launch_ = 0;
  bool step_started_ = false;
  int no_sync_depth_ = 0;
  std::mutex mutex_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
};

// Rank 0's values into `tensors` on every rank, in one broadcast per dtype.
void broadcast_coalesced(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root);

// Throws on every rank, naming the first difference, unless all ranks describe the same
// list (names, shapes, dtypes). `what` names the list in the message.
void check_same_on_all_ranks(Communicator& comm, const std::vector<std::string>& lines, const std::string& what);

}  // namespace dpunet::dist
