// CheckpointStore.
#include "checkpoint/store.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "checkpoint/checkpoint.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/file_listing.h"
#include "common/text.h"

namespace dpunet::checkpoint {
namespace fs = std::filesystem;

CheckpointStore::CheckpointStore(std::string run_dir) : directory_(std::move(run_dir) + "/checkpoints") {}

std::string CheckpointStore::path_for_step(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.ckpt", static_cast<long long>(step));
  return directory_ + "/" + name;
}

std::vector<std::string> CheckpointStore::list() const {
  std::vector<std::string> paths;
  for (const fs::path& entry : directory_entries(directory_)) {
    if (step_of(entry.string())) paths.push_back(entry.string());
  }
  // By step: the zero padding of the names runs out at 10^8 steps.
  std::sort(paths.begin(), paths.end(),
            [](const std::string& a, const std::string& b) { return *step_of(a) < *step_of(b); });
  return paths;
}

namespace {

// The file a pointer (best, latest) at `pointer` names: a file name in the pointer's own
// folder. Nothing when the pointer is missing or empty.
std::optional<std::string> pointer_target(const fs::path& pointer) {
  if (!exists_or_fail(pointer.string())) return std::nullopt;
  std::string target = read_file(pointer.string());
  while (!target.empty() && (target.back() == '\n' || target.back() == ' ')) target.pop_back();
  if (target.empty()) return std::nullopt;
  const fs::path folder = pointer.parent_path();
  return folder.empty() ? target : (folder / target).string();
}

}  // namespace

std::optional<std::string> CheckpointStore::read_pointer(const std::string& name) const {
  return pointer_target(fs::path(directory_) / name);
}

void CheckpointStore::write_pointer(const std::string& name, const std::string& target) const {
  write_file_atomically(directory_ + "/" + name, fs::path(target).filename().string() + "\n");
}

std::optional<std::string> CheckpointStore::best() const {
  return read_pointer("best");
}

std::optional<std::string> CheckpointStore::latest() const {
  return read_pointer("latest");
}

void CheckpointStore::commit(int64_t step, const std::function<void(const std::string&)>& write, bool best,
                             int64_t keep_last) {
  std::error_code ec;
  // A new checkpoints/ folder is made durable in its parent too: the first checkpoint
  // must not vanish with it in a power loss.
  if (fs::create_directories(directory_, ec)) sync_directory(fs::path(directory_).parent_path().string());
  DPUNET_CHECK(!ec, "cannot create ", directory_, ": ", ec.message());
  const std::string path = path_for_step(step);
  write(path);
  write_pointer("latest", path);
  if (best) write_pointer("best", path);
  const std::optional<std::string> kept_best = read_pointer("best");
  // By step, not by position in the listing: a file of a later step (a run that went
  // further before this one resumed from an earlier checkpoint) must not push out the
  // one just written.
  std::vector<std::string> up_to_step;
  for (const std::string& p : list()) {
    if (*step_of(p) <= step) up_to_step.push_back(p);
  }
  const auto excess = static_cast<int64_t>(up_to_step.size()) - std::max<int64_t>(keep_last, 1);
  for (int64_t i = 0; i < excess; ++i) {
    // By name: an error comparing files (fs::equivalent) must not prune the best one.
    if (kept_best && fs::path(up_to_step[i]).filename() == fs::path(*kept_best).filename()) continue;
    // Not an error: the new checkpoint is safe. But said (once for each file), as the old
    // ones pile up until the disk is full.
    if (!fs::remove(up_to_step[i], ec) && ec && unremovable_.insert(up_to_step[i]).second) {
      std::cerr << "dpunet: warning: cannot remove the old checkpoint " << up_to_step[i] << ": " << ec.message()
                << " (checkpoint.keep_last is not kept; older checkpoints will pile up)" << std::endl;
    }
  }
}

std::optional<int64_t> CheckpointStore::step_of(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const std::string prefix = "step-", suffix = ".ckpt";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 || !ends_with(name, suffix)) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return std::nullopt;
  return std::stoll(digits);
}

std::vector<std::string> CheckpointStore::set_aside(std::optional<int64_t> after_step,
                                                    const std::string& destination) const {
  std::vector<std::string> files;
  for (const std::string& p : list()) {
    if (!after_step || *step_of(p) > *after_step) files.push_back(p);
  }
  // The pointers go first: a kill in between leaves none, not one naming a file moved.
  std::vector<std::string> moving;
  bool latest_moved = false;
  for (const char* pointer : {"latest", "best"}) {
    const auto target = read_pointer(pointer);
    if (!target) continue;
    const bool names_moved = std::find(files.begin(), files.end(), *target) != files.end();
    if (!after_step || names_moved) {
      moving.push_back(directory_ + "/" + pointer);
      latest_moved = latest_moved || std::string(pointer) == "latest";
    }
  }
  moving.insert(moving.end(), files.begin(), files.end());
  std::vector<std::string> moved;
  if (moving.empty()) return moved;
  std::error_code ec;
  fs::create_directories(destination, ec);
  DPUNET_CHECK(!ec, "cannot create ", destination, ": ", ec.message());
  for (const std::string& p : moving) {
    const std::string name = fs::path(p).filename().string();
    fs::rename(p, destination + "/" + name, ec);
    DPUNET_CHECK(!ec, "cannot move ", p, " to ", destination, ": ", ec.message());
    moved.push_back(name);
  }
  // `latest` names the newest checkpoint left, for a reader of RUN/checkpoints/latest
  // before this run's first checkpoint (best is the caller's: restore_best).
  if (latest_moved && after_step) {
    std::optional<std::string> newest;
    for (const std::string& p : list()) {
      if (!newest || *step_of(p) > *step_of(*newest)) newest = p;
    }
    if (newest) write_pointer("latest", *newest);
  }
  return moved;
}

void CheckpointStore::restore_best(int64_t step) const {
  const std::string path = path_for_step(step);
  if (!exists_or_fail(path)) return;
  const auto pointer = read_pointer("best");
  if (pointer && fs::path(*pointer).filename() == fs::path(path).filename()) return;
  write_pointer("best", path);
}

int64_t CheckpointStore::remove_partial_writes() const {
  int64_t removed = 0;
  std::error_code ec;
  for (const fs::path& entry : directory_entries(directory_)) {
    if (!atomic_write_target(entry.filename().string())) continue;
    if (fs::remove(entry, ec)) ++removed;
  }
  return removed;
}

std::optional<std::string> CheckpointStore::latest_valid(const std::function<void(const std::string&)>& warn) const {
  // By step, not by the `latest` pointer: a stop between writing a checkpoint and its
  // pointer leaves `latest` naming the one before, and resuming there would set the
  // newer one aside. Checkpoints of an abandoned later history are set aside when a run
  // resumes before them, so the highest step is this run's newest.
  std::vector<std::string> candidates = list();
  std::reverse(candidates.begin(), candidates.end());  // newest first
  for (const std::string& path : candidates) {
    std::string why;
    if (is_valid_checkpoint(path, &why)) return path;
    warn("skipping damaged checkpoint: " + why);
  }
  return std::nullopt;
}

namespace {

// The folder that holds folder `folder`, also when the path names no parent: from inside
// a run directory, "checkpoints" is held by ".", not by the root.
fs::path folder_holding(const fs::path& folder) {
  fs::path up = (folder / "..").lexically_normal();
  if (up.filename().empty() && up.has_parent_path()) up = up.parent_path();  // "run/" -> "run"
  return up;
}

}  // namespace

std::string resolve_checkpoint_argument(const std::string& path, std::string* chosen) {
  std::error_code ec;
  fs::path given = fs::path(path).lexically_normal();
  if (given.has_parent_path() && given.filename().empty()) given = given.parent_path();  // "run/checkpoints/"
  const std::string name = given.filename().string();
  if (fs::is_regular_file(given, ec) && (name == "best" || name == "latest")) {
    // Read where it lies: a copied checkpoints folder (backup/ckpts/best) names its own
    // files, not those of a checkpoints/ folder beside it.
    const std::optional<std::string> target = pointer_target(given);
    DPUNET_CHECK(target && fs::exists(*target, ec), path, ": the '", name, "' pointer names ",
                 target ? *target : std::string("nothing"), ", which does not exist");
    if (chosen != nullptr) *chosen = "checkpoint: " + *target + " (" + name + ")";
    return *target;
  }
  // Not a read error of a file (a run directory not made yet, a name mistyped). The path
  // as given: the OS follows a link before "..", which lexically_normal() drops as text.
  if (!fs::exists(path, ec) && !ec) {
    if (fs::is_symlink(path, ec)) fail_broken_link(path);
    DPUNET_FAIL(path, ": no such checkpoint, run directory or file");
  }
  if (!fs::is_directory(given, ec)) return path;  // a file, or an error naming it when it is read
  const bool run_dir = fs::is_directory(given / "checkpoints", ec);
  // By its own name, also when given as "." from inside it.
  fs::path absolute = fs::absolute(given, ec).lexically_normal();
  if (absolute.filename().empty() && absolute.has_parent_path()) absolute = absolute.parent_path();
  DPUNET_CHECK(run_dir || absolute.filename() == "checkpoints", path,
               " is a folder but neither a run directory (with checkpoints/) nor a checkpoints/ folder");
  const std::string run = run_dir ? given.string() : folder_holding(given).string();
  const CheckpointStore store(run);
  std::string skipped, best_damage;
  if (const std::optional<std::string> best_one = store.best(); best_one && fs::exists(*best_one, ec)) {
    std::string why;
    if (is_valid_checkpoint(*best_one, &why)) {
      if (chosen != nullptr) *chosen = "checkpoint: " + *best_one + " (the best of " + run + ")";
      return *best_one;
    }
    best_damage = "; its best is damaged: " + why;
  } else if (best_one) {
    best_damage = "; its best pointer names " + *best_one + ", which does not exist";
  }
  const std::optional<std::string> newest = store.latest_valid([&](const std::string& m) { skipped += "; " + m; });
  DPUNET_CHECK(newest.has_value(), path, ": no valid checkpoint in ", store.directory(), skipped);
  // The best among the newer ones set aside: its damage is said there, once.
  if (const std::optional<std::string> best_one = store.best();
      !best_damage.empty() && best_one && skipped.find(*best_one) != std::string::npos) {
    best_damage = "; its best is one of the damaged ones";
  }
  if (chosen != nullptr) {
    *chosen = "checkpoint: " + *newest + " (the newest of " + run +
              (best_damage.empty()
                   ? "; it has no best checkpoint: one needs validation with a defined score, and checkpoint.keep_best"
                   : best_damage) +
              skipped + ")";
  }
  return *newest;
}

}  // namespace dpunet::checkpoint
