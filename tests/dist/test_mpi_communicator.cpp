// MpiCommunicator against exact known answers, on the background thread and inline.
#include <torch/torch.h>
#include "support/catch.h"

#include <chrono>
#include <thread>

#include "common/error.h"
#include "dist/mpi_communicator.h"
#include "support/mpi_test_context.h"

using dpunet::dist::MpiCommunicator;
using dpunet::dist::MpiCommunicatorOptions;
using dpunet::dist::ReduceOp;

namespace {

MpiCommunicatorOptions with_thread(bool threaded) {
  MpiCommunicatorOptions options;
  options.background_thread = threaded;
  return options;
}

// Rank r holds r + 1 + (i mod 5) at index i: small integers, so every sum is exact in
// every dtype, bf16 included.
torch::Tensor rank_pattern(int64_t n, int rank, torch::ScalarType type) {
  return (torch::arange(n, torch::kLong).remainder(5) + rank + 1).to(type);
}

torch::Tensor expected_sum(int64_t n, int world, torch::ScalarType type) {
  // sum over r of (r + 1 + (i mod 5)) = world*(world+1)/2 + world*(i mod 5)
  return (torch::arange(n, torch::kLong).remainder(5) * world + world * (world + 1) / 2).to(type);
}

}  // namespace

// The tests' ranks all run on this machine: one node, led by rank 0.
TEST_CASE("Context puts the ranks of one machine on one node", "[mpi]") {
  auto& context = dpunet::test::mpi_context();
  CHECK(context.local_size() == context.world_size());
  CHECK(context.local_rank() == context.rank());
  CHECK(context.node_leader() == 0);
}

TEST_CASE("MPI all_reduce sums exactly for several sizes and dtypes", "[mpi]") {
  auto& context = dpunet::test::mpi_context();
  const bool threaded = GENERATE(true, false);
  MpiCommunicator comm(context, with_thread(threaded));
  const int world = comm.world_size();
  for (auto type : {torch::kFloat, torch::kDouble, torch::kLong, torch::kInt, torch::kBFloat16, torch::kHalf}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000}, (int64_t{1} << 20) + 3}) {
      torch::Tensor t = rank_pattern(n, comm.rank(), type);
      comm.all_reduce(t, ReduceOp::kSum);
      INFO("dtype " << c10::toString(type) << ", " << n << " elements, threaded " << threaded);
      REQUIRE(torch::equal(t, expected_sum(n, world, type)));
    }
  }
}

TEST_CASE("MPI all_reduce average divides the exact sum by the world size", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const int world = comm.world_size();
  torch::Tensor t = rank_pattern(1001, comm.rank(), torch::kDouble);
  comm.all_reduce(t, ReduceOp::kAvg);
  REQUIRE(torch::allclose(t, expected_sum(1001, world, torch::kDouble) / world, /*rtol=*/0, /*atol=*/1e-12));
}

TEST_CASE("MPI all_reduce average is the correctly rounded quotient of the sum in every floating dtype", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const int world = comm.world_size();
  for (auto type : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    INFO("dtype " << c10::toString(type) << ", world size " << world);
    // Full mantissas on rank 0, zeros elsewhere: the sum is exact in any order, and its
    // quotient by 3 rounds differently from a product with a rounded 1/3 in many places.
    torch::manual_seed(11);
    const torch::Tensor values = (torch::randn({4099}, torch::kDouble) * 1000).to(type);
    torch::Tensor t = comm.rank() == 0 ? values.clone() : torch::zeros_like(values);
    comm.all_reduce(t, ReduceOp::kAvg);
    REQUIRE(torch::equal(t, values / world));
  }
}

TEST_CASE("MPI all_reduce in pieces gives the same sums and averages, whatever the shape", "[mpi]") {
  MpiCommunicatorOptions options = with_thread(GENERATE(true, false));
  options.max_message_bytes = 40;  // 10 floats, 5 doubles: most tensors below take several pieces
  MpiCommunicator comm(dpunet::test::mpi_context(), options);
  const int world = comm.world_size();
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{10}, int64_t{11}, int64_t{1003}}) {
    INFO(n << " elements");
    torch::Tensor sum = rank_pattern(n, comm.rank(), torch::kFloat);
    comm.all_reduce(sum, ReduceOp::kSum);
    REQUIRE(torch::equal(sum, expected_sum(n, world, torch::kFloat)));
    torch::Tensor avg = rank_pattern(n, comm.rank(), torch::kDouble);
    comm.all_reduce(avg, ReduceOp::kAvg);
    REQUIRE(torch::allclose(avg, expected_sum(n, world, torch::kDouble) / world, /*rtol=*/0, /*atol=*/1e-12));
  }
  // A 4-D tensor (a convolution's gradient) is split along its memory, not its first dim.
  torch::Tensor weight = rank_pattern(2 * 3 * 3 * 3, comm.rank(), torch::kFloat).view({2, 3, 3, 3});
  comm.all_reduce(weight, ReduceOp::kSum);
  REQUIRE(torch::equal(weight, expected_sum(54, world, torch::kFloat).view({2, 3, 3, 3})));
}

TEST_CASE("MPI all_reduce gives every rank the same bits, also where rounding differs by order", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const int world = comm.world_size();
  // Values whose float sums depend on the order of addition.
  torch::manual_seed(7 + comm.rank());
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{4099}, (int64_t{1} << 20) + 7}) {
    INFO(n << " elements");
    torch::Tensor t = torch::randn({n}) * torch::pow(10.0, torch::randint(-6, 7, {n}).to(torch::kFloat));
    comm.all_reduce(t, ReduceOp::kAvg);
    torch::Tensor everyone = torch::empty({world * n});
    comm.all_gather(t, everyone);
    for (int r = 1; r < world; ++r) REQUIRE(torch::equal(everyone.narrow(0, r * n, n), everyone.narrow(0, 0, n)));
  }
}

TEST_CASE("MPI asynchronous all_reduces complete in issue order", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  REQUIRE(comm.uses_background_thread());
  std::vector<torch::Tensor> tensors;
  std::vector<std::unique_ptr<dpunet::dist::Work>> works;
  for (int i = 0; i < 8; ++i) {
    tensors.push_back(torch::full({4096 * (i + 1)}, static_cast<float>(comm.rank() + i)));
    works.push_back(comm.all_reduce_async(tensors.back(), ReduceOp::kSum));
  }
  const int world = comm.world_size();
  for (int i = 0; i < 8; ++i) {
    works[i]->wait();
    const float expected = static_cast<float>(world * (world - 1) / 2 + world * i);
    REQUIRE(torch::equal(tensors[i], torch::full({4096 * (i + 1)}, expected)));
  }
}

TEST_CASE("MPI broadcast copies the root's tensor to every rank", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const int root = comm.world_size() - 1;
  for (auto type : {torch::kFloat, torch::kLong, torch::kBFloat16, torch::kByte}) {
    for (int64_t n : {int64_t{1}, int64_t{333}, (int64_t{1} << 20) + 1}) {
      torch::Tensor t = comm.rank() == root ? rank_pattern(n, 7, type) : torch::zeros({n}, type);
      comm.broadcast(t, root);
      REQUIRE(torch::equal(t, rank_pattern(n, 7, type)));
    }
  }
  REQUIRE(comm.broadcast_string(comm.rank() == 0 ? "from rank 0" : "", 0) == "from rank 0");
}

TEST_CASE("MPI all_gather puts rank r's values at slot r", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const std::vector<int64_t> values = comm.all_gather_values(100 + comm.rank());
  REQUIRE(static_cast<int>(values.size()) == comm.world_size());
  for (int r = 0; r < comm.world_size(); ++r) REQUIRE(values[r] == 100 + r);

  const torch::Tensor input = torch::full({3}, static_cast<float>(comm.rank()));
  torch::Tensor output = torch::empty({3 * comm.world_size()});
  comm.all_gather(input, output);
  for (int r = 0; r < comm.world_size(); ++r)
    REQUIRE(torch::equal(output.narrow(0, 3 * r, 3), torch::full({3}, float(r))));
  comm.barrier();
}

TEST_CASE("MPI communicator rejects tensors it cannot send, with the reason", "[mpi]") {
  MpiCommunicator comm(dpunet::test::mpi_context());
  const torch::Tensor strided = torch::zeros({4, 4}).t();
  REQUIRE_THROWS_WITH(comm.all_reduce(strided, ReduceOp::kSum), HasSubstr("contiguous"));
  REQUIRE_THROWS_WITH(comm.all_reduce(torch::zeros({4}, torch::kLong), ReduceOp::kAvg), HasSubstr("floating"));
  REQUIRE_THROWS_WITH(comm.all_reduce(torch::zeros({4}, torch::kBool), ReduceOp::kSum), HasSubstr("bool"));
  REQUIRE_THROWS_WITH(comm.broadcast(torch::zeros({2}), comm.world_size()), HasSubstr("root"));
  REQUIRE_THROWS_WITH(comm.all_gather(torch::zeros({2}), torch::zeros({1})), HasSubstr("all_gather output"));
}

TEST_CASE("MPI communicator: a longer timeout lets a slow rank arrive, and the old one comes back after", "[mpi]") {
  MpiCommunicatorOptions options = with_thread(GENERATE(true, false));
  options.timeout = std::chrono::milliseconds(800);
  MpiCommunicator comm(dpunet::test::mpi_context(), options);
  if (comm.world_size() < 2) return;  // an [mpi] test: run under mpirun -np 2 or more
  {
    const dpunet::dist::LongerTimeout startup(comm, std::chrono::seconds(20));
    CHECK(comm.timeout() == std::chrono::seconds(20));
    // Rank 1 arrives 2 s late (reading a checkpoint, say): past the steps' timeout.
    if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(2));
    comm.barrier();
  }
  CHECK(comm.timeout() == std::chrono::milliseconds(800));
  comm.barrier();
}
