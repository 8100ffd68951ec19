// DeviceBatches. The copy stream's allocations are used on the compute stream, so each
// handed-out tensor is recorded on it (the caching allocator then does not reuse the
// memory before the compute stream is done with it).
#include "train/device_batches.h"

#include <torch/torch.h>

#ifdef DPUNET_TORCH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dpunet::train {

struct DeviceBatches::Copy {
  data::Batch batch;  // device tensors once the event has fired
#ifdef DPUNET_TORCH_CUDA
  at::cuda::CUDAEvent done;
#endif
};

struct DeviceBatches::CopyStream {
#ifdef DPUNET_TORCH_CUDA
  c10::cuda::CUDAStream stream;
#endif
};

namespace {

data::Batch to_device(data::Batch batch, c10::Device device, const DeviceBatchOptions& options) {
  batch.images = batch.images.to(device, /*non_blocking=*/true);
  if (options.channels_last) batch.images = batch.images.contiguous(at::MemoryFormat::ChannelsLast);
  batch.masks = batch.masks.to(device, /*non_blocking=*/true).to(torch::kLong);
  return batch;
}

}  // namespace

DeviceBatches::DeviceBatches(data::Loader& loader, c10::Device device, DeviceBatchOptions options)
    : loader_(loader), device_(device), options_(options), state_(loader.state()) {
#ifdef DPUNET_TORCH_CUDA
  if (device_.is_cuda()) {
    stream_ = std::make_unique<CopyStream>(
        CopyStream{c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index())});
  }
#endif
}

DeviceBatches::~DeviceBatches() = default;

std::unique_ptr<DeviceBatches::Copy> DeviceBatches::start_copy() {
  auto copy = std::make_unique<Copy>();
#ifdef DPUNET_TORCH_CUDA
  {
    c10::cuda::CUDAStreamGuard on_copy_stream(stream_->stream);
    copy->batch = to_device(loader_.next(), device_, options_);
    copy->done.record(stream_->stream);
  }
#endif
  return copy;
}

data::Batch DeviceBatches::next() {
  if (!device_.is_cuda()) {
    data::Batch batch = to_device(loader_.next(), device_, options_);
    state_ = batch.state_after;
    return batch;
  }
#ifdef DPUNET_TORCH_CUDA
  if (!ahead_) ahead_ = start_copy();
  std::unique_ptr<Copy> ready = std::move(ahead_);
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_.index());
  ready->done.block(compute);
  ready->batch.images.record_stream(compute);
  ready->batch.masks.record_stream(compute);
  state_ = ready->batch.state_after;
  return std::move(ready->batch);
#else
  return {};  // unreachable: a CUDA device without CUDA support fails at startup
#endif
}

void DeviceBatches::prefetch() {
  if (device_.is_cuda() && !ahead_) ahead_ = start_copy();
}

}  // namespace dpunet::train
