// The NCCL backend at world size 1 on a GPU: exact collectives, and a DDP step and a
// SyncBatchNorm step equal to the plain ones. Skipped with a message without a GPU.
#include <torch/torch.h>
#include "support/catch.h"

#include "dist/ddp.h"
#include "dist/make_communicator.h"
#include "support/ddp_fixture.h"
#include "support/mpi_test_context.h"

using namespace dpunet;

namespace {

// The NCCL communicator of this process, or nullptr (with a warning) when there is none.
std::shared_ptr<dist::Communicator> nccl_or_skip() {
  if (!dist::nccl_available() || !torch::cuda::is_available()) {
    WARN("skipped: needs a GPU and a build with NCCL");
    return nullptr;
  }
  // Reference and DDP must run the same convolution arithmetic: no TF32, fixed algorithms.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setDeterministicCuDNN(true);
  test::mpi_context();  // MPI up first; the GPU context below then shares it
  static dist::Context gpu_context(dist::DevicePreference::kCuda);
  return dist::make_communicator(gpu_context, "nccl");
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

TEST_CASE("NCCL DDP step and SyncBatchNorm step equal the plain ones on one GPU", "[gpu]") {
  auto comm = nccl_or_skip();
  if (!comm) return;
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
    INFO("norm " << model::to_string(norm));
    REQUIRE(test::max_relative_error(test::gradients(*net), test::gradients(*reference)) <= 1e-5);
  }
}
