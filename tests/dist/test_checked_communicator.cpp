// distributed.check_collectives: collectives the ranks agree on go through unchanged; a
// rank about to issue another one stops every rank with each rank's view, not a hang.
#include "support/catch.h"

#include <torch/torch.h>

#include "common/error.h"
#include "dist/checked_communicator.h"
#include "dist/make_communicator.h"
#include "support/mpi_test_context.h"

using namespace dpunet;

namespace {

std::shared_ptr<dist::Communicator> checked_communicator(dist::Context& context) {
  dist::CommunicatorOptions options;
  options.timeout = std::chrono::seconds(30);
  options.check_collectives = true;
  return dist::make_communicator(context, "mpi", options);
}

}  // namespace

TEST_CASE("Checked collectives that agree give the results of unchecked ones", "[mpi]") {
  auto& context = test::mpi_context();
  const auto comm = checked_communicator(context);
  REQUIRE(dynamic_cast<dist::CheckedCommunicator*>(comm.get()) != nullptr);
  const int n = context.world_size();
  torch::Tensor sum = torch::full({2, 3}, static_cast<double>(context.rank() + 1));
  comm->all_reduce(sum, dist::ReduceOp::kSum);
  CHECK(sum.eq(n * (n + 1) / 2.0).all().item<bool>());
  torch::Tensor root = torch::full({4}, static_cast<int64_t>(context.rank()), torch::kLong);
  comm->broadcast(root, n - 1);
  CHECK(root.eq(n - 1).all().item<bool>());
  const auto gathered = comm->all_gather_values(10 * context.rank());
  REQUIRE(static_cast<int>(gathered.size()) == n);
  for (int r = 0; r < n; ++r) CHECK(gathered[r] == 10 * r);
  CHECK(comm->broadcast_string(context.rank() == 0 ? "from rank 0" : "", 0) == "from rank 0");
  comm->barrier();
}

TEST_CASE("A rank about to issue another collective stops every rank with each rank's view", "[mpi]") {
  auto& context = test::mpi_context();
  if (context.world_size() < 2) return;
  const auto comm = checked_communicator(context);
  const bool odd_one = context.rank() == context.world_size() - 1;
  const std::string last = std::to_string(context.world_size() - 1);
  torch::Tensor t = torch::ones({4});
  comm->all_reduce(t, dist::ReduceOp::kSum);  // #0 agrees
  // As an extra collective on one rank does: #1 is a broadcast there, an all-reduce elsewhere.
  auto differ = [&] {
    if (odd_one) {
      comm->broadcast(t, 0);
    } else {
      comm->all_reduce(t, dist::ReduceOp::kAvg);
    }
  };
  const std::string others = context.world_size() == 2 ? "rank 0: " : "ranks 0, ";
  CHECK_THROWS_AS(differ(), AgreedError);
  CHECK_THROWS_WITH(differ(), HasSubstr("about to issue different collectives") && HasSubstr(others) &&
                                  HasSubstr("collective #2, all_reduce (avg) of Float [4]") &&
                                  HasSubstr("rank " + last + ": collective #2, broadcast from rank 0 of Float [4]"));
  // The one collective that differs was not launched: the ranks go on together.
  torch::Tensor after = torch::ones({3});
  comm->all_reduce(after, dist::ReduceOp::kSum);
  CHECK(after.eq(context.world_size()).all().item<bool>());
}

TEST_CASE("Tensors of one size but another shape are told apart by the collective check", "[mpi]") {
  auto& context = test::mpi_context();
  if (context.world_size() < 2) return;
  const auto comm = checked_communicator(context);
  torch::Tensor t = context.rank() == 0 ? torch::ones({2, 2}) : torch::ones({4});
  CHECK_THROWS_WITH(comm->all_reduce(t, dist::ReduceOp::kSum),
                    HasSubstr("rank 0: collective #0, all_reduce (sum) of Float [2, 2] (4 elements)") &&
                        HasSubstr("collective #0, all_reduce (sum) of Float [4] (4 elements)"));
}
