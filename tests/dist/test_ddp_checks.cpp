// What DistributedDataParallel refuses or repairs: models that differ across ranks,
// parameters that got no gradient, buffers drifting apart, weights that start apart.
#include <torch/torch.h>
#include "support/catch.h"

#include "dist/ddp.h"
#include "dist/mpi_communicator.h"
#include "support/ddp_fixture.h"
#include "support/mpi_test_context.h"
#include "support/tensor_compare.h"

using namespace dpunet;

namespace {

// A linear layer plus one that forward may skip.
struct TwoHeadsImpl : torch::nn::Module {
  TwoHeadsImpl() {
    used = register_module("used", torch::nn::Linear(4, 2));
    skipped = register_module("skipped", torch::nn::Linear(4, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) { return used(x); }
  torch::nn::Linear used{nullptr}, skipped{nullptr};
};
TORCH_MODULE(TwoHeads);

}  // namespace

TEST_CASE("DDP rejects models that differ across ranks on every rank, naming the difference", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  if (comm.world_size() < 2) return;
  torch::manual_seed(0);
  // The last rank's second layer is wider.
  auto net = std::make_shared<torch::nn::Sequential>(
      torch::nn::Linear(4, 8), torch::nn::Linear(8, comm.rank() == comm.world_size() - 1 ? 3 : 2));
  auto module = net->ptr();
  if (comm.rank() == comm.world_size() - 1) {
    REQUIRE_THROWS_WITH(dist::DistributedDataParallel(module, comm), HasSubstr("differs between rank") &&
                                                                         HasSubstr("'1.weight' [3, 8]") &&
                                                                         HasSubstr("'1.weight' [2, 8]"));
  } else {
    REQUIRE_THROWS_WITH(dist::DistributedDataParallel(module, comm), HasSubstr("differ from rank 0"));
  }
  comm.barrier();  // every rank got here: nobody hung in the check
}

TEST_CASE("DDP rejects a parameter frozen on some ranks only", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  if (comm.world_size() < 2) return;
  torch::manual_seed(0);
  auto net = std::make_shared<torch::nn::Sequential>(torch::nn::Linear(4, 8), torch::nn::Linear(8, 2));
  if (comm.rank() == comm.world_size() - 1) net->ptr()->named_parameters()["1.bias"].set_requires_grad(false);
  auto module = net->ptr();
  if (comm.rank() == comm.world_size() - 1) {
    REQUIRE_THROWS_WITH(dist::DistributedDataParallel(module, comm), HasSubstr("'1.bias' [2] Float (frozen)"));
  } else {
    REQUIRE_THROWS_WITH(dist::DistributedDataParallel(module, comm), HasSubstr("differ from rank 0"));
  }
  comm.barrier();
}

TEST_CASE("DDP starts every rank from rank 0's weights and buffers", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  torch::manual_seed(100 + comm.rank());  // different weights on every rank
  model::UnetOptions options;
  options.base_channels = 8;
  options.depth = 1;
  model::Unet net(options);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : net->buffers()) b.fill_(comm.rank());
  }
  dist::DistributedDataParallel ddp(net.ptr(), comm);
  torch::manual_seed(100);
  model::Unet rank0(options);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : rank0->buffers()) b.fill_(0);
  }
  REQUIRE(test::max_relative_error(test::state(*net), test::state(*rank0)) == 0);
}

TEST_CASE("DDP names parameters that got no gradient, unless told to allow them", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  const torch::Tensor x = torch::ones({3, 4});
  {
    TwoHeads net;
    dist::DistributedDataParallel ddp(net.ptr(), comm);
    net->forward(x).sum().backward();
    REQUIRE_THROWS_WITH(ddp.synchronize(),
                        HasSubstr("skipped.weight") && HasSubstr("skipped.bias") && !HasSubstr("used.weight"));
  }
  {
    TwoHeads net;
    dist::DdpOptions options;
    options.allow_unused_parameters = true;
    dist::DistributedDataParallel ddp(net.ptr(), comm, options);
    net->forward(x).sum().backward();
    ddp.synchronize();
    REQUIRE(torch::equal(net->skipped->weight.grad(), torch::zeros({2, 4})));
    REQUIRE(torch::equal(net->used->bias.grad(), torch::full({2}, 3.0f)));
  }
}

TEST_CASE("DDP counts a gradient from an earlier micro-batch of the step as a use", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  TwoHeads net;
  dist::DistributedDataParallel ddp(net.ptr(), comm);
  const torch::Tensor x = torch::ones({3, 4});
  {
    auto guard = ddp.no_sync();  // the first micro-batch reaches both heads
    (net->used(x).sum() + net->skipped(x).sum()).backward();
  }
  net->forward(x).sum().backward();  // the last one only `used`
  REQUIRE_NOTHROW(ddp.synchronize());
  // Every rank did the same: the averages are this rank's sums.
  REQUIRE(torch::equal(net->skipped->bias.grad(), torch::full({2}, 3.0f)));
  REQUIRE(torch::equal(net->used->bias.grad(), torch::full({2}, 6.0f)));
}

TEST_CASE("DDP forgets micro-batches that zero_grad discarded", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  TwoHeads net;
  dist::DistributedDataParallel ddp(net.ptr(), comm);
  const torch::Tensor x = torch::ones({3, 4});
  {
    auto guard = ddp.no_sync();  // reaches both heads, then is thrown away
    (net->used(x).sum() + net->skipped(x).sum()).backward();
  }
  ddp.zero_grad();
  net->forward(x).sum().backward();
  REQUIRE_THROWS_WITH(ddp.synchronize(), HasSubstr("skipped.weight") && !HasSubstr("used.weight"));
}

TEST_CASE("DDP copies rank 0's BatchNorm statistics to every rank after each step", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  model::Unet net = test::make_small_unet(model::Norm::kBatch);
  dist::DistributedDataParallel ddp(net.ptr(), comm);
  const auto batch = test::make_global_batch(2, comm.world_size());
  test::batch_loss(net, test::rank_share(batch, comm.rank(), comm.world_size())).backward();
  ddp.synchronize();
  // Rank 0's statistics come from rank 0's share of the batch.
  model::Unet rank0 = test::make_small_unet(model::Norm::kBatch);
  test::batch_loss(rank0, test::rank_share(batch, 0, comm.world_size())).backward();
  std::map<std::string, torch::Tensor> mine, expected;
  for (const auto& b : net->named_buffers()) mine[b.key()] = b.value();
  for (const auto& b : rank0->named_buffers()) expected[b.key()] = b.value();
  REQUIRE(test::max_relative_error(mine, expected) <= 1e-6);
}

TEST_CASE("DDP refuses a second backward before synchronize", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  TwoHeads net;
  dist::DdpOptions options;
  options.allow_unused_parameters = true;
  dist::DistributedDataParallel ddp(net.ptr(), comm, options);
  net->forward(torch::ones({1, 4})).sum().backward();
  REQUIRE_THROWS_WITH(net->forward(torch::ones({1, 4})).sum().backward(), HasSubstr("synchronize()"));
  ddp.synchronize();
}

TEST_CASE("DDP gives channels_last weights gradients laid out like them", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  torch::manual_seed(0);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  torch::nn::Conv2d reference(torch::nn::Conv2dOptions(3, 4, 3));
  {
    torch::NoGradGuard no_grad;
    reference->weight.copy_(conv->weight);
    reference->bias.copy_(conv->bias);
    conv->weight.set_data(conv->weight.data().contiguous(at::MemoryFormat::ChannelsLast));
  }
  dist::DistributedDataParallel ddp(conv.ptr(), comm);
  // The fused optimizer kernels need a parameter and its gradient to share strides.
  CHECK(conv->weight.grad().strides() == conv->weight.strides());
  CHECK(conv->weight.grad().is_contiguous(at::MemoryFormat::ChannelsLast));

  // The same input on every rank, rank r's loss scaled by r + 1: the average is this
  // gradient times (world + 1) / 2.
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  (conv(x).square().sum() * (comm.rank() + 1.0)).backward();
  ddp.synchronize();
  (reference(x).square().sum() * ((comm.world_size() + 1) / 2.0)).backward();
  // The channels_last convolution sums its weight gradient in another order: rounding of
  // the whole gradient's scale (1e-5 of 68 on an AMD EPYC's oneDNN kernels).
  CHECK(test::within_scale(conv->weight.grad(), reference->weight.grad(), 1e-6));
  CHECK(torch::allclose(conv->bias.grad(), reference->bias.grad(), 1e-5, 1e-6));
}
