// SyncBatchNorm's numerics: bf16 input (autocast's convolution outputs) is normalised
// with float32 statistics, NHWC and float64 input alike, and a rank with an empty share
// adds nothing.
#include <torch/torch.h>
#include "support/catch.h"

#include "dist/mpi_communicator.h"
#include "dist/sync_batch_norm.h"
#include "support/mpi_test_context.h"

using namespace dpunet;

namespace {

// Channels with a large mean and a small spread: a bf16 mean (spacing 0.5 at 100) would
// shift every normalised value by up to a quarter of a standard deviation.
torch::Tensor whole_batch(int64_t samples) {
  torch::manual_seed(7);
  return torch::randn({samples, 3, 6, 6}) + torch::tensor({100.0, -50.0, 0.5}).view({1, 3, 1, 1});
}

// BatchNorm in float32 over `whole`, and the gradient of sum(y * weights) w.r.t. its input.
std::pair<torch::Tensor, torch::Tensor> reference(const torch::Tensor& whole, const torch::Tensor& weights) {
  const torch::Tensor x = whole.to(torch::kFloat).detach().clone().requires_grad_(true);
  const torch::Tensor y = torch::batch_norm(x, {}, {}, {}, {}, true, 0.1, 1e-5, false);
  (y * weights).sum().backward();
  return {y.detach(), x.grad()};
}

}  // namespace

TEST_CASE("SyncBatchNorm on bf16 input matches float32 BatchNorm over the whole batch", "[mpi]") {
  auto comm = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  const int64_t ranks = comm->world_size(), rank = comm->rank();
  const torch::Tensor whole = whole_batch(2 * ranks).to(torch::kBFloat16);
  const torch::Tensor weights = torch::randn({2 * ranks, 3, 6, 6});
  const auto [expected_y, expected_dx] = reference(whole, weights);

  dist::SyncBatchNorm norm(dist::SyncBatchNormOptions{3}, comm);
  const torch::Tensor x = whole.narrow(0, 2 * rank, 2).clone().requires_grad_(true);
  const torch::Tensor y = norm->forward(x);
  (y.to(torch::kFloat) * weights.narrow(0, 2 * rank, 2)).sum().backward();
  CHECK(y.scalar_type() == torch::kBFloat16);
  CHECK(x.grad().scalar_type() == torch::kBFloat16);
  // bf16 keeps 8 bits: the results may differ from float32's by that rounding, no more.
  CHECK(torch::allclose(y.to(torch::kFloat), expected_y.narrow(0, 2 * rank, 2), 1e-2, 1e-2));
  CHECK(torch::allclose(x.grad().to(torch::kFloat), expected_dx.narrow(0, 2 * rank, 2), 2e-2, 2e-2));
  CHECK(torch::allclose(norm->running_mean, 0.1 * whole.to(torch::kFloat).mean({0, 2, 3}), 1e-4, 1e-4));
}

TEST_CASE("SyncBatchNorm on channels_last float32 and on float64 input matches BatchNorm over the whole batch",
          "[mpi]") {
  auto comm = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  const int64_t ranks = comm->world_size(), rank = comm->rank();
  const torch::Tensor whole = whole_batch(2 * ranks);
  const torch::Tensor weights = torch::randn({2 * ranks, 3, 6, 6});
  const auto [expected_y, expected_dx] = reference(whole, weights);
  for (const bool nhwc : {true, false}) {
    INFO((nhwc ? "channels_last float32" : "float64"));
    dist::SyncBatchNorm norm(dist::SyncBatchNormOptions{3}, comm);
    if (!nhwc) norm->to(torch::kDouble);
    torch::Tensor part = whole.narrow(0, 2 * rank, 2).clone();
    part = nhwc ? part.contiguous(at::MemoryFormat::ChannelsLast) : part.to(torch::kDouble);
    const torch::Tensor x = part.requires_grad_(true);
    const torch::Tensor y = norm->forward(x);
    (y * weights.narrow(0, 2 * rank, 2).to(y.scalar_type())).sum().backward();
    // An NHWC map stays NHWC for the layers after it.
    if (nhwc) CHECK(y.is_contiguous(at::MemoryFormat::ChannelsLast));
    CHECK(torch::allclose(y.to(torch::kFloat), expected_y.narrow(0, 2 * rank, 2), 1e-4, 1e-4));
    CHECK(torch::allclose(x.grad().to(torch::kFloat), expected_dx.narrow(0, 2 * rank, 2), 1e-4, 1e-4));
  }
}

TEST_CASE("SyncBatchNorm with an empty share on one rank normalises the others' values", "[mpi]") {
  auto comm = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  const int64_t ranks = comm->world_size(), rank = comm->rank();
  if (ranks < 2) return;  // an [mpi] test: run under mpirun -np 2 or more
  // Rank 0 holds nothing; every other rank holds 2 samples.
  const torch::Tensor whole = whole_batch(2 * (ranks - 1));
  const torch::Tensor weights = torch::randn({2 * (ranks - 1), 3, 6, 6});
  const auto [expected_y, expected_dx] = reference(whole, weights);
  const int64_t first = rank == 0 ? 0 : 2 * (rank - 1), count = rank == 0 ? 0 : 2;

  dist::SyncBatchNorm norm(dist::SyncBatchNormOptions{3}, comm);
  const torch::Tensor x = whole.narrow(0, first, count).clone().requires_grad_(true);
  const torch::Tensor y = norm->forward(x);
  (y * weights.narrow(0, first, count)).sum().backward();
  CHECK(torch::isfinite(norm->running_mean).all().item<bool>());
  CHECK(torch::allclose(y, expected_y.narrow(0, first, count), 1e-4, 1e-4));
  CHECK(torch::allclose(x.grad(), expected_dx.narrow(0, first, count), 1e-4, 1e-4));
}

TEST_CASE("SyncBatchNorm with nothing on any rank leaves its running statistics as they were", "[mpi]") {
  auto comm = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  if (comm->world_size() < 2) return;  // an [mpi] test: run under mpirun -np 2 or more
  dist::SyncBatchNorm norm(dist::SyncBatchNormOptions{3}, comm);
  const torch::Tensor y = norm->forward(torch::empty({0, 3, 6, 6}));
  CHECK(y.numel() == 0);
  CHECK(torch::equal(norm->running_mean, torch::zeros({3})));
  CHECK(torch::equal(norm->running_var, torch::ones({3})));
}

TEST_CASE("SyncBatchNorm on one rank refuses one value per channel, which has no variance", "[dist]") {
  auto comm = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  if (comm->world_size() != 1) return;  // run as one process
  dist::SyncBatchNorm norm(dist::SyncBatchNormOptions{3}, comm);
  CHECK_THROWS_WITH(norm->forward(torch::randn({1, 3, 1, 1})),
                    HasSubstr("needs more than one value per channel") && HasSubstr("1 rank(s)"));
  // Two values are enough: the running variance is their unbiased variance.
  const torch::Tensor x = torch::tensor({1.0f, 3.0f}).view({2, 1, 1, 1}).expand({2, 3, 1, 1}).contiguous();
  norm->forward(x);
  CHECK(torch::allclose(norm->running_var, torch::full({3}, 0.9 + 0.1 * 2.0)));
}
