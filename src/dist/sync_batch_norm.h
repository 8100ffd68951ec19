// SyncBatchNorm: batch normalisation whose statistics cover the whole global batch. Mean
// and variance are combined across ranks in forward, and the gradient's two reductions
// in backward, through a Communicator. Same parameter and buffer names as BatchNorm2d,
// so weights move freely between the two.
#pragma once

#include <memory>

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "dist/communicator.h"

namespace dpunet::dist {

struct SyncBatchNormOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  double momentum = 0.1;
};

class SyncBatchNormImpl : public torch::nn::Cloneable<SyncBatchNormImpl> {
 public:
  SyncBatchNormImpl(SyncBatchNormOptions options, std::shared_ptr<Communicator> comm);
  void reset() override;
  // [N, C, ...] -> same shape. Training mode syncs across ranks; eval uses running stats.
  torch::Tensor forward(const torch::Tensor& input);

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  SyncBatchNormOptions options_;
  std::shared_ptr<Communicator> comm_;
};
TORCH_MODULE(SyncBatchNorm);

}  // namespace dpunet::dist
