// Training batches on the training device, one batch ahead. On a GPU, batch N+1 is
// copied from pinned host memory on a stream of its own while the compute stream works
// on batch N, and the compute stream waits only on that copy's event, never the host.
// The copy starts at prefetch(), which the caller calls once batch N's work is queued:
// were it started in next(), a loader late with batch N+1 would hold back the launch of
// batch N's kernels too. On CPU, batches pass straight through.
#pragma once

#include <c10/core/Device.h>

#include <memory>

#include "data/loader.h"

namespace dpunet::train {

struct DeviceBatchOptions {
  bool channels_last = false;  // images in NHWC, as channels_last training wants them
};

class DeviceBatches {
 public:
  DeviceBatches(data::Loader& loader, c10::Device device, DeviceBatchOptions options);
  ~DeviceBatches();
  DeviceBatches(const DeviceBatches&) = delete;
  DeviceBatches& operator=(const DeviceBatches&) = delete;

  // The next batch: images float32 [B, C, P, P] and masks int64 [B, P, P] on the device,
  // ready for use on the current stream.
  data::Batch next();
  // Starts the next batch's copy unless it is under way (GPU only; next() starts it
  // itself when this was not called).
  void prefetch();
  // The sampler state after the last batch handed out (the loader itself is one ahead),
  // which is what a checkpoint must store.
  data::SamplerState state() const { return state_; }

 private:
  struct Copy;
  struct CopyStream;
  std::unique_ptr<Copy> start_copy();

  data::Loader& loader_;
  c10::Device device_;
  DeviceBatchOptions options_;
  data::SamplerState state_;
  // One stream for every copy: the caching allocator reuses a freed block only for
  // allocations on the stream that made it.
  std::unique_ptr<CopyStream> stream_;  // GPU only
  std::unique_ptr<Copy> ahead_;         // the batch in flight to the device (GPU only)
};

}  // namespace dpunet::train
