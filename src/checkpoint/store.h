// The checkpoints of one run directory: RUN/checkpoints/step-00000120.ckpt, a `latest`
// pointer file naming the newest, a `best` pointer naming the best by validation score,
// and retention of the last K (the best is always kept).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dpunet::checkpoint {

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string run_dir);

  const std::string& directory() const { return directory_; }
  std::string path_for_step(int64_t step) const;

  // Writes a checkpoint with `write(path)`, then points `latest` at it, optionally marks
  // it best, and prunes older ones: of those up to `step`, all but the last `keep_last`
  // (and the best) go. Files of later steps are never touched here.
  void commit(int64_t step, const std::function<void(const std::string&)>& write, bool best, int64_t keep_last);
  // Moves the checkpoints of steps after `after_step` (all of them when none is given),
  // and the pointers that name one of them, into `destination`. Returns the file names
  // moved, pointers first. A `latest` moved is written again, naming the newest
  // checkpoint left.
  std::vector<std::string> set_aside(std::optional<int64_t> after_step, const std::string& destination) const;
  // Points `best` at step `step`'s checkpoint (the resumed checkpoint's best) when that
  // file exists and the pointer names another or none: a resume from an older
  // checkpoint sets the pointer aside with the later checkpoints, and a stop between
  // writing `latest` and `best` leaves it naming the previous best; either way the best
  // one must not be pruned as an ordinary one.
  void restore_best(int64_t step) const;
  // Removes the temporary files of writes that never finished (a writer killed mid-way);
  // returns how many.
  int64_t remove_partial_writes() const;
  // The step in a step-*.ckpt file name; none for other names.
  static std::optional<int64_t> step_of(const std::string& path);

  // The checkpoint of the highest step that verifies. Damaged ones are skipped; each
  // skip is reported through `warn`.
  std::optional<std::string> latest_valid(const std::function<void(const std::string&)>& warn) const;
  std::optional<std::string> best() const;
  std::optional<std::string> latest() const;  // the pointer, unverified
  // step-*.ckpt files, oldest first.
  std::vector<std::string> list() const;

 private:
  std::optional<std::string> read_pointer(const std::string& name) const;
  void write_pointer(const std::string& name, const std::string& target) const;

  std::string directory_;
  std::set<std::string> unremovable_;  // old checkpoints commit() said it could not prune: said once
};

// What a checkpoint argument (`predict --checkpoint`, `export`) names: a checkpoint file
// as given; a `best` or `latest` pointer, the checkpoint it names; a run directory or its
// checkpoints/ folder, its best checkpoint, else its newest valid one. `chosen` (when not
// null) gets a line saying which file that was and why, for the console.
std::string resolve_checkpoint_argument(const std::string& path, std::string* chosen);

}  // namespace dpunet::checkpoint
