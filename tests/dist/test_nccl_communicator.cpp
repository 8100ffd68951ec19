// The NCCL backend at world size 1 on a GPU: exact collectives, DDP steps and a
// SyncBatchNorm step equal to the plain ones. Skipped with a message without a GPU.
#include <torch/torch.h>
#include "support/catch.h"

#include "dist/checked_communicator.h"
#include "dist/ddp.h"
#include "dist/make_communicator.h"
#include "support/ddp_fixture.h"
#include "support/mpi_test_context.h"
#include "train/setup.h"

using namespace dpunet;

namespace {

dist::Context& gpu_context() {
  test::mpi_context();  // MPI up first; the GPU context then shares it
  static dist::Context context(dist::DevicePreference::kCuda);
  return context;
}

// The NCCL communicator of this process, or nullptr (with a warning) when there is none.
std::shared_ptr<dist::Communicator> nccl_or_skip() {
  if (!dist::nccl_available() || !torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU and a build with NCCL");
    return nullptr;
  }
  // Reference and DDP must run the same convolution arithmetic: no TF32, fixed algorithms.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setDeterministicCuDNN(true);
  return dist::make_communicator(gpu_context(), "nccl");
}

}  // namespace

TEST_CASE("NCCL collectives give exact results", "[gpu]") {
  auto comm = nccl_or_skip();
  if (!comm) return;
  const auto device = comm->device();
  for (auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kLong}) {
    for (int64_t n : {int64_t{1}, int64_t{1000}, (int64_t{1} << 20) + 3}) {
      const torch::Tensor expected = torch::arange(n, torch::kLong).remainder(7).to(type).to(device);
      torch::Tensor t = expected.clone();
      comm->all_reduce(t, dist::ReduceOp::kSum);
      REQUIRE(torch::equal(t, expected * comm->world_size()));
      t = expected * (comm->rank() + 1);  // rank 0 holds `expected`, the others more
      comm->broadcast(t, 0);
      REQUIRE(torch::equal(t, expected));
      torch::Tensor gathered = torch::empty({n * comm->world_size()}, expected.options());
      comm->all_gather(expected, gathered);
      REQUIRE(torch::equal(gathered.narrow(0, 0, n), expected));
    }
  }
  REQUIRE(comm->all_gather_values(41) == std::vector<int64_t>(comm->world_size(), 41));
  comm->barrier();
}

// (SyncBatchNorm alone launches no collectives: here it checks its arithmetic on a GPU;
// its collectives run over NCCL only with several GPUs, over MPI in the [mpi] tests.)
TEST_CASE("NCCL DDP step and SyncBatchNorm step equal the plain ones on one GPU", "[gpu]") {
  auto nccl = nccl_or_skip();
  if (!nccl) return;
  // Also with every collective checked first (distributed.check_collectives): the buckets'
  // all-reduces then exchange their fingerprints from autograd's device thread.
  const bool checked = GENERATE(false, true);
  const std::shared_ptr<dist::Communicator> comm =
      checked ? std::make_shared<dist::CheckedCommunicator>(gpu_context(), nccl) : nccl;
  const auto batch = test::make_global_batch(2, 1);
  const test::GlobalBatch on_gpu{batch.images.to(comm->device()), batch.labels.to(comm->device())};
  for (auto norm : {model::Norm::kNone, model::Norm::kSyncBatch}) {
    model::Unet reference = test::make_small_unet(norm == model::Norm::kNone ? norm : model::Norm::kBatch);
    reference->to(comm->device());
    test::batch_loss(reference, on_gpu).backward();
    model::Unet net = test::make_small_unet(norm, comm);
    net->to(comm->device());
    dist::DdpOptions options;
    options.communicate_when_alone = true;  // the NCCL reducer itself, even at world size 1
    dist::DistributedDataParallel ddp(net.ptr(), *comm, options);
    test::batch_loss(net, on_gpu).backward();
    ddp.synchronize();
    INFO("norm " << model::to_string(norm) << ", collectives checked " << checked);
    REQUIRE(test::max_relative_error(test::gradients(*net), test::gradients(*reference)) <= 1e-5);
  }
}

// Steps after the first run on buckets laid out again in the gradients' order, with
// gradients that must stay views of them through zero_grad; channels_last weights give
// the views their strides; a bf16 wire adds the reducer's own copies on the NCCL stream.
TEST_CASE("NCCL DDP gradients stay the plain ones step after step, channels_last and bf16 on the wire", "[gpu]") {
  auto comm = nccl_or_skip();
  if (!comm) return;
  const auto device = comm->device();
  const auto batch = test::make_global_batch(2, 1);
  const test::GlobalBatch on_gpu{batch.images.to(device), batch.labels.to(device)};
  for (const auto wire : {dist::WireDtype::kNone, dist::WireDtype::kBFloat16}) {
    const bool bf16 = wire == dist::WireDtype::kBFloat16;
    model::Unet reference = test::make_small_unet(model::Norm::kBatch);
    reference->to(device);
    torch::optim::SGD optimizer(reference->parameters(), torch::optim::SGDOptions(0.1));
    model::Unet net = test::make_small_unet(model::Norm::kBatch);
    net->to(device);
    train::use_channels_last_weights(*net);
    dist::DdpOptions options;
    options.communicate_when_alone = true;
    options.wire_dtype = wire;
    options.bucket_caps = dist::BucketCaps{4096, 16384, 4096};  // several buckets
    dist::DistributedDataParallel ddp(net.ptr(), *comm, options);
    REQUIRE(ddp.bucket_numels().size() > 2);
    for (int step = 0; step < 3; ++step) {
      optimizer.zero_grad();
      test::batch_loss(reference, on_gpu).backward();
      auto expected = test::gradients(*reference);
      if (bf16) {
        for (auto& [name, g] : expected) g = g.to(torch::kBFloat16).to(torch::kFloat);
      }
      {
        torch::NoGradGuard no_grad;
        const auto weights = test::state(*reference);
        for (auto& p : net->named_parameters()) p.value().copy_(weights.at(p.key()));
        for (auto& b : net->named_buffers()) b.value().copy_(weights.at(b.key()));
      }
      ddp.zero_grad();
      test::batch_loss(net, on_gpu).backward();
      ddp.synchronize();
      INFO("wire " << (bf16 ? "bf16" : "float32") << ", step " << step);
      std::string worst;
      const double error = test::max_relative_error(test::gradients(*net), expected, &worst);
      INFO("worst: " << worst);
      CHECK(error <= (bf16 ? 5e-3 : 1e-4));
      for (const auto& p : net->parameters()) {
        REQUIRE(p.grad().is_contiguous(at::MemoryFormat::ChannelsLast) ==
                p.is_contiguous(at::MemoryFormat::ChannelsLast));
      }
      optimizer.step();
    }
  }
}
