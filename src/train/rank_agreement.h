// Checks that every rank starts from the same inputs, before any collective depends on
// them. Each rank opens the datasets and reads the checkpoint for itself, so a
// node-local copy or a filesystem cache can show one rank something else: a different
// training set ends its epochs at other steps (validation's collectives then meet the
// gradients'), a different checkpoint gives it other optimizer moments. Either is an
// error on every rank, naming what rank 0 and the differing ranks see.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/dataset.h"
#include "dist/communicator.h"

namespace dpunet::train {

// "N samples in S shards (<layout>), shard list <hash>": the names (not folders), sample
// counts and statistics of the shards, so equal copies in different places agree.
std::string describe_dataset(const data::Dataset& dataset);

// "N <kind>, list <hash>": names in order (file names, not folders).
std::string describe_names(const std::vector<std::string>& names, const std::string& kind);

// `what` names the input in the error ("data.train /path/spec", "the checkpoint to resume from").
void check_same_on_every_rank(dist::Communicator& comm, const std::string& description, const std::string& what);

void check_same_dataset(dist::Communicator& comm, const data::Dataset& dataset, const std::string& key,
                        const std::string& spec);
void check_same_checkpoint(dist::Communicator& comm, const std::optional<checkpoint::LoadedCheckpoint>& loaded);

// Runs `step`, which must hold no collective, on every rank and then agrees on how it
// went: when it threw on any rank, every rank throws an AgreedError, and the job ends
// with one message and MPI finalised instead of ranks aborting over each other. Rank 0
// reports its own error; when it did not fail, the ranks that did report theirs. For
// checks that usually fail alike everywhere (a missing dataset, a model that does not
// fit the data or the checkpoint).
void fail_together(dist::Communicator& comm, const std::function<void()>& step);

}  // namespace dpunet::train
