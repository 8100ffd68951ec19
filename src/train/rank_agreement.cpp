// Rank agreement: rank 0 broadcasts its description, each rank compares, and one
// all-gather of the verdicts lets every rank fail together.
#include "train/rank_agreement.h"

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "common/error.h"
#include "common/exception_message.h"
#include "common/text.h"

namespace dpunet::train {
namespace {

std::string hex(uint64_t value, int digits) {
  char text[17];
  std::snprintf(text, sizeof text, "%0*" PRIx64, digits, value);
  return text;
}

}  // namespace

std::string describe_dataset(const data::Dataset& dataset) {
  std::string listing;
  for (const auto& shard : dataset.shards()) {
    const data::ShardHeader& h = shard->header();
    listing += std::filesystem::path(shard->path()).filename().string() + ":" + std::to_string(h.samples);
    for (double v : h.channel_mean) listing += "," + std::to_string(v);
    for (double v : h.channel_std) listing += "," + std::to_string(v);
    listing += ";";
  }
  // Saved in checkpoints and compared as text on resume: the wording stays as it was
  // written ("1 shards" included), or a resume would take the data for changed.
  return std::to_string(dataset.size()) + " samples in " + std::to_string(dataset.shards().size()) + " shards (" +
         data::describe_layout(dataset.header()) + "), shard list " + hex(fnv1a(listing), 16);
}

std::string describe_names(const std::vector<std::string>& names, const std::string& kind) {
  std::string listing;
  for (const std::string& name : names) listing += name + ";";
  return std::to_string(names.size()) + " " + kind + ", list " + hex(fnv1a(listing), 16);
}

void check_same_on_every_rank(dist::Communicator& comm, const std::string& description, const std::string& what) {
  if (comm.world_size() == 1) return;
  const std::string root = comm.broadcast_string(description, /*root=*/0);
  const std::vector<int64_t> differs = comm.all_gather_values(description == root ? 0 : 1);
  std::string ranks;
  for (size_t r = 0; r < differs.size(); ++r) {
    if (differs[r] != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  if (ranks.empty()) return;
  // Every rank got the same answers from the two collectives above.
  DPUNET_FAIL_ON_EVERY_RANK(
      description != root, what, " differs between ranks: rank 0 sees ", root, "; rank(s) ", ranks,
      " see something else",
      description == root ? std::string() : " (rank " + std::to_string(comm.rank()) + ": " + description + ")",
      ". Every rank must read the same files (a shared filesystem, or identical copies)");
}

void check_same_dataset(dist::Communicator& comm, const data::Dataset& dataset, const std::string& key,
                        const std::string& spec) {
  check_same_on_every_rank(comm, describe_dataset(dataset), key + " " + spec);
}

void check_same_checkpoint(dist::Communicator& comm, const std::optional<checkpoint::LoadedCheckpoint>& loaded) {
  const std::string description = loaded ? "step " + std::to_string(loaded->state().step) + " (CRC-32 " +
                                               hex(loaded->crc(), 8) + ") from " +
                                               std::filesystem::path(loaded->path()).filename().string()
                                         : std::string("no checkpoint");
  check_same_on_every_rank(comm, description, "the checkpoint to resume from");
}

void fail_together(dist::Communicator& comm, const std::function<void()>& step) {
  std::string error;
  try {
    step();
  } catch (const std::exception& e) {  // any failure, so that this rank still takes the all-gather
    error = exception_message(e);
    if (error.empty()) error = "an unexplained error";
  }
  const std::vector<int64_t> failed = comm.all_gather_values(error.empty() ? 0 : 1);
  std::string failed_ranks;
  for (size_t r = 0; r < failed.size(); ++r) {
    if (failed[r] != 0) failed_ranks += (failed_ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  if (failed_ranks.empty()) return;
  const bool root_failed = failed[0] != 0;
  if (!error.empty()) throw AgreedError(error, /*rank_specific=*/!root_failed);
  DPUNET_FAIL_ON_EVERY_RANK(false, "rank(s) ", failed_ranks,
                            " could not start (their errors are above); every rank stops");
}

}  // namespace dpunet::train
