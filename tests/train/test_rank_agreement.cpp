// Ranks that open different training data or resume from different checkpoint files
// fail together with one message naming what rank 0 and the differing ranks see;
// identical copies in different places agree.
#include <torch/torch.h>
#include "support/catch.h"

#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "dist/mpi_communicator.h"
#include "support/mpi_test_context.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"
#include "train/rank_agreement.h"

using namespace dpunet;
using dpunet::test::TempDir;

TEST_CASE("ranks that read different datasets fail together, naming rank 0's and theirs", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  TempDir dir;  // each rank its own: copies of one dataset in different places
  std::filesystem::create_directories(dir / "same");
  std::filesystem::create_directories(dir / "other");
  test::write_known_shard(dir / "same/train-0.h5", 4);
  const data::Dataset same(dir / "same");
  CHECK_NOTHROW(train::check_same_dataset(comm, same, "data.train", "same"));

  // Rank 1's copy holds one more sample.
  test::write_known_shard(dir / "other/train-0.h5", comm.rank() == 1 ? 5 : 4);
  const data::Dataset other(dir / "other");
  CHECK_THROWS_WITH(train::check_same_dataset(comm, other, "data.train", "other"),
                    HasSubstr("data.train other differs between ranks: rank 0 sees 4 samples in 1 shards") &&
                        HasSubstr("rank(s) 1 see something else"));
}

TEST_CASE("ranks that load different checkpoint files of one step fail together", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  TempDir dir;
  const std::string path = dir / "step-00000004.ckpt";
  const auto write = [&](const std::string& config) {
    torch::manual_seed(0);
    torch::nn::Linear model(2, 2);
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
    checkpoint::TrainingState state;
    state.step = 4;
    state.config_yaml = config;
    checkpoint::save_checkpoint(path, *model, sgd, state);
  };
  // Rank 0's file, copied to every rank's run directory (ranks of this test share /tmp).
  if (comm.rank() == 0) write("run A");
  const std::string original = comm.broadcast_string(path, /*root=*/0);
  if (comm.rank() != 0) std::filesystem::copy_file(original, path);
  comm.barrier();
  CHECK_NOTHROW(train::check_same_checkpoint(comm, std::nullopt));
  CHECK_NOTHROW(train::check_same_checkpoint(comm, checkpoint::LoadedCheckpoint(path)));
  // Rank 1's run directory holds another run's file under the same name.
  if (comm.rank() == 1) write("run B");
  CHECK_THROWS_WITH(train::check_same_checkpoint(comm, checkpoint::LoadedCheckpoint(path)),
                    HasSubstr("the checkpoint to resume from differs between ranks: rank 0 sees step 4 (CRC-32 ") &&
                        HasSubstr("rank(s) 1 see something else"));
}
