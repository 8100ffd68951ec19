// rank_among_same_gpus: a rank counts only the ranks of its machine that see its GPUs.
#include "support/catch.h"

#include <cstdlib>
#include <optional>
#include <string>

#include "dist/gpu_choice.h"
#include "support/mpi_test_context.h"

using namespace dpunet;

namespace {

// Sets CUDA_VISIBLE_DEVICES (unsets it for nullopt) for the scope, then restores it.
class VisibleGpus {
 public:
  explicit VisibleGpus(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("CUDA_VISIBLE_DEVICES")) saved_ = old;
    if (value) {
      setenv("CUDA_VISIBLE_DEVICES", value->c_str(), 1);
    } else {
      unsetenv("CUDA_VISIBLE_DEVICES");
    }
  }
  ~VisibleGpus() {
    if (saved_) {
      setenv("CUDA_VISIBLE_DEVICES", saved_->c_str(), 1);
    } else {
      unsetenv("CUDA_VISIBLE_DEVICES");
    }
  }
  VisibleGpus(const VisibleGpus&) = delete;
  VisibleGpus& operator=(const VisibleGpus&) = delete;

 private:
  std::optional<std::string> saved_;
};

}  // namespace

TEST_CASE("a rank's GPU is counted among the ranks of its machine that see the same GPUs", "[mpi]") {
  auto& context = test::mpi_context();
  const int rank = context.rank();  // the test's ranks share one machine
  {
    const VisibleGpus all(std::nullopt);
    CHECK(dist::rank_among_same_gpus(context.world()) == rank);
  }
  {
    // As SLURM's --gpu-bind=closest does: even ranks see one socket's GPUs, odd ones the other's.
    const VisibleGpus socket(rank % 2 == 0 ? "0,1" : "2,3");
    CHECK(dist::rank_among_same_gpus(context.world()) == rank / 2);
  }
  {
    // Set but empty (no GPU) is not the same as unset.
    const VisibleGpus hidden(rank == 0 ? std::optional<std::string>("") : std::nullopt);
    CHECK(dist::rank_among_same_gpus(context.world()) == (rank == 0 ? 0 : rank - 1));
  }
}
