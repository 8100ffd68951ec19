// A run directory's history, made to agree with where a run starts. A fresh start in a
// used directory, or a resume from a checkpoint older than the newest, leaves behind
// checkpoints, metrics rows and TensorBoard events of steps this run will redo: left in
// place, `--resume auto` would pick the other timeline's newest checkpoint and the
// curves would mix two runs. They are moved, never deleted, to RUN/superseded-<time>/; temporary files of
// checkpoint writes that never finished are removed. RUN/config.yaml goes there too when
// this run's config differs from it: with the history moved, or when no run wrote it (the
// file this run was started from, with its comments, before --set). Rank 0 only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dpunet::train {

// RUN/tensorboard: the run's TensorBoard event files.
inline constexpr const char* kTensorBoardFolder = "tensorboard";

struct SupersededHistory {
  std::string folder;                    // empty when nothing was moved
  std::vector<std::string> checkpoints;  // file names moved from RUN/checkpoints
  int64_t metric_rows = 0;               // metrics.jsonl rows moved
  int64_t events = 0;                    // TensorBoard events moved
  int64_t damaged_event_files = 0;       // event files whose unreadable rest was moved
  int64_t partial_writes = 0;            // unfinished temporaries removed
  bool config = false;                   // RUN/config.yaml copied there
};

// `resume_step`: the step of the checkpoint this run continues from; none for a fresh start.
// `validation_pending`: that checkpoint's validation is still to run, so a validation of
// its step in the history is one a killed run began after writing it (before it could
// record it in the checkpoint); this run redoes it, and it is set aside too.
// `config_text`: what this run writes to RUN/config.yaml next (the caller writes it).
SupersededHistory set_aside_superseded_history(const std::string& run_dir, std::optional<int64_t> resume_step,
                                               bool validation_pending, const std::string& config_text);

// One line for the log, empty when there is nothing to say.
std::string describe(const SupersededHistory& history);

}  // namespace dpunet::train
