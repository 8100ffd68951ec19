// Helpers for the DistributedDataParallel equivalence tests.
#include "support/ddp_fixture.h"

#include "support/tensor_compare.h"

namespace dpunet::test {

GlobalBatch make_global_batch(int64_t per_rank, int world, int64_t size) {
  torch::manual_seed(1234);
  GlobalBatch batch;
  batch.images = torch::randn({per_rank * world, 1, size, size});
  batch.labels = torch::randint(0, 2, {per_rank * world, size, size}, torch::kLong);
  return batch;
}

GlobalBatch rank_share(const GlobalBatch& batch, int rank, int world) {
  const int64_t per_rank = batch.images.size(0) / world;
  return {batch.images.narrow(0, rank * per_rank, per_rank), batch.labels.narrow(0, rank * per_rank, per_rank)};
}

model::Unet make_small_unet(model::Norm norm, std::shared_ptr<dist::Communicator> comm) {
  torch::manual_seed(42);
  model::UnetOptions options;
  options.n_channels = 1;
  options.n_classes = 2;
  options.base_channels = 8;
  options.depth = 2;
  options.norm = norm;
  options.communicator = std::move(comm);
  return model::Unet(options);
}

torch::Tensor batch_loss(model::Unet& net, const GlobalBatch& batch) {
  return torch::nn::functional::cross_entropy(net->forward(batch.images), batch.labels);
}

std::map<std::string, torch::Tensor> gradients(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> grads;
  for (const auto& p : module.named_parameters()) {
    if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
  }
  return grads;
}

std::map<std::string, torch::Tensor> state(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> values;
  for (const auto& p : module.named_parameters()) values[p.key()] = p.value().detach().clone();
  for (const auto& b : module.named_buffers()) values[b.key()] = b.value().clone();
  return values;
}

double max_relative_error(const std::map<std::string, torch::Tensor>& actual,
                          const std::map<std::string, torch::Tensor>& expected, std::string* worst) {
  double largest = 0;
  for (const auto& [name, want] : expected) {
    const auto found = actual.find(name);
    if (found == actual.end()) {
      if (worst) *worst = name + " (missing)";
      return INFINITY;
    }
    const double error = want.is_floating_point() ? relative_error(found->second, want)
                                                  : (torch::equal(found->second, want) ? 0.0 : INFINITY);
    if (error > largest) {
      largest = error;
      if (worst) *worst = name;
    }
  }
  return largest;
}

}  // namespace dpunet::test
