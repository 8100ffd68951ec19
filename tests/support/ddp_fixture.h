// What the DistributedDataParallel tests share: a small U-Net, one global batch that
// every rank can rebuild, and one SGD step run either on the whole batch in one process
// or on this rank's share under DistributedDataParallel.
#pragma once

#include <functional>
#include <map>
#include <string>

#include <torch/torch.h>

#include "dist/ddp.h"
#include "model/unet.h"

namespace dpunet::test {

struct GlobalBatch {
  torch::Tensor images;  // [N, 1, H, W]
  torch::Tensor labels;  // [N, H, W] class indices
};

// The same batch on every rank (fixed seed): `per_rank` samples for each of `world` ranks.
GlobalBatch make_global_batch(int64_t per_rank, int world, int64_t size = 32);
GlobalBatch rank_share(const GlobalBatch& batch, int rank, int world);

// base 8, depth 2: small enough for a few-second multi-rank test.
model::Unet make_small_unet(model::Norm norm, std::shared_ptr<dist::Communicator> comm = nullptr);

// Mean cross-entropy of the model on the batch.
torch::Tensor batch_loss(model::Unet& net, const GlobalBatch& batch);

// Name -> copy of every parameter's gradient, and of every parameter and buffer.
std::map<std::string, torch::Tensor> gradients(torch::nn::Module& module);
std::map<std::string, torch::Tensor> state(torch::nn::Module& module);

// Largest relative error over matching entries (every name of `expected` must exist).
double max_relative_error(const std::map<std::string, torch::Tensor>& actual,
                          const std::map<std::string, torch::Tensor>& expected, std::string* worst = nullptr);

}  // namespace dpunet::test
