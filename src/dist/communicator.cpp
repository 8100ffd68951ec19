// Blocking conveniences shared by every backend, built on the asynchronous operations.
#include "dist/communicator.h"

#include <torch/torch.h>

namespace dpunet::dist {

void Communicator::all_reduce(const at::Tensor& tensor, ReduceOp op) {
  all_reduce_async(tensor, op)->wait();
}

void Communicator::broadcast(const at::Tensor& tensor, int root) {
  broadcast_async(tensor, root)->wait();
}

void Communicator::all_gather(const at::Tensor& input, const at::Tensor& output) {
  all_gather_async(input, output)->wait();
}

std::vector<int64_t> Communicator::all_gather_values(int64_t value) {
  const auto options = torch::TensorOptions().dtype(torch::kInt64).device(device());
  const torch::Tensor input = torch::full({1}, value, options);
  const torch::Tensor output = torch::empty({world_size()}, options);
  all_gather(input, output);
  const torch::Tensor host = output.cpu();
  return std::vector<int64_t>(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + world_size());
}

std::string Communicator::broadcast_string(const std::string& text, int root) {
  const auto options = torch::TensorOptions().dtype(torch::kUInt8).device(device());
  torch::Tensor length = torch::full({1}, static_cast<int64_t>(text.size()), options.dtype(torch::kInt64));
  broadcast(length, root);
  const int64_t size = length.cpu().item<int64_t>();
  torch::Tensor bytes = torch::zeros({std::max<int64_t>(size, 1)}, options);
  if (rank() == root && size > 0) {
    bytes.narrow(0, 0, size).copy_(torch::from_blob(const_cast<char*>(text.data()), {size}, torch::kUInt8));
  }
  broadcast(bytes, root);
  const torch::Tensor host = bytes.cpu();
  return std::string(reinterpret_cast<const char*>(host.data_ptr<uint8_t>()), size);
}

}  // namespace dpunet::dist
