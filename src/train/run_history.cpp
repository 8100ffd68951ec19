// set_aside_superseded_history.
#include "train/run_history.h"

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/file_listing.h"
#include "config/config.h"
#include "train/tensorboard_events.h"

namespace dpunet::train {
namespace fs = std::filesystem;
namespace {

// RUN/superseded-20261202-134501, with a counter if that exists already.
std::string new_folder_name(const std::string& run_dir) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &utc);
  std::string folder = run_dir + "/superseded-" + stamp;
  std::error_code ec;
  for (int n = 2; fs::exists(folder, ec); ++n) folder = run_dir + "/superseded-" + stamp + "-" + std::to_string(n);
  return folder;
}

// Whether a metrics row belongs to the steps up to `resume_step`. Rows that do not parse
// (a line cut short when the process was killed) are set aside too.
bool keep_row(const std::string& line, std::optional<int64_t> resume_step, bool validation_pending) {
  if (!resume_step) return false;
  const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!row.is_object() || !row.contains("step") || !row["step"].is_number_integer()) return false;
  const int64_t step = row["step"].get<int64_t>();
  if (validation_pending && step == *resume_step && row.contains("kind") && row["kind"] == "val") return false;
  return step <= *resume_step;
}

// Splits metrics.jsonl: rows after the resume point go to `folder`. Returns how many.
int64_t set_aside_metric_rows(const std::string& run_dir, std::optional<int64_t> resume_step, bool validation_pending,
                              const std::string& folder) {
  const std::string path = run_dir + "/metrics.jsonl";
  std::error_code ec;
  if (!exists_or_fail(path)) return 0;
  std::string kept, moved;
  int64_t moved_rows = 0;
  const std::string rows = read_file(path);
  std::istringstream in(rows);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (keep_row(line, resume_step, validation_pending)) {
      kept += line + "\n";
    } else {
      moved += line + "\n";
      ++moved_rows;
    }
  }
  if (moved_rows == 0) {
    // A last row without its newline would have this run's first row glued onto it.
    if (!rows.empty() && rows.back() != '\n') write_file_atomically(path, kept);
    return 0;
  }
  fs::create_directories(folder, ec);
  DPUNET_CHECK(!ec, "cannot create ", folder, ": ", ec.message());
  // The copy is on disk before the rows leave the original.
  write_file_atomically(folder + "/metrics.jsonl", moved);
  write_file_atomically(path, kept);
  return moved_rows;
}

// Splits each TensorBoard event file alike: events after the resume point (all of them
// on a fresh start) go to `folder`'s copy of the file, with what could not be read after
// the last good record; a record cut short by a killed write, alone, is cut off, but
// damage with more bytes after it is moved too, never dropped. Temporaries of an earlier
// split that was killed are removed: TensorBoard would read them as more events.
// Returns how many events moved; counts the files with damage in `damaged_files`.
int64_t set_aside_events(const std::string& run_dir, std::optional<int64_t> resume_step, bool validation_pending,
                         const std::string& folder, int64_t& damaged_files) {
  const std::string events_dir = run_dir + "/" + kTensorBoardFolder;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const fs::path& entry : directory_entries(events_dir)) {
    const std::string name = entry.filename().string();
    if (name.rfind("events.out.tfevents.", 0) != 0 || !fs::is_regular_file(entry, ec)) continue;
    // A temporary's original is still there (event files are only ever rewritten); a
    // host name holding ".tmp.N" in a real event file's name has no such original.
    const std::optional<std::string> original = atomic_write_target(name);
    if (original && fs::is_regular_file(fs::path(events_dir) / *original, ec)) {
      fs::remove(entry, ec);
    } else {
      files.push_back(entry);
    }
  }
  int64_t moved_events = 0;
  for (const fs::path& path : files) {
    const std::string name = path.filename().string();
    const std::string bytes = read_file(path.string());
    bool complete = true;
    const std::vector<EventRecord> records = read_event_records(bytes, &complete);
    std::string kept, moved;
    size_t read_bytes = 0;
    int64_t moving = 0;
    for (const EventRecord& r : records) {
      read_bytes += r.bytes.size();
      const bool redone_validation =
          validation_pending && resume_step && r.step == *resume_step && r.tag.rfind("val/", 0) == 0;
      const bool keep = r.step < 0 ? true : resume_step && r.step <= *resume_step && !redone_validation;
      if (keep) kept += r.bytes;
      if (!keep || r.step < 0) moved += r.bytes;  // each copy keeps the file's version event
      moving += keep ? 0 : 1;
    }
    const std::string unread = bytes.substr(read_bytes);
    const bool damaged = !complete && !cut_short_record(unread);
    if (moving == 0 && !damaged) {
      if (!complete) write_file_atomically(path.string(), kept);
      continue;
    }
    moved += unread;  // kept as it was
    damaged_files += damaged ? 1 : 0;
    fs::create_directories(folder + "/" + kTensorBoardFolder, ec);
    DPUNET_CHECK(!ec, "cannot create ", folder, "/", kTensorBoardFolder, ": ", ec.message());
    write_file_atomically(folder + "/" + kTensorBoardFolder + "/" + name, moved);
    if (resume_step) {
      write_file_atomically(path.string(), kept);
    } else {
      fs::remove(path, ec);
      DPUNET_CHECK(!ec, "cannot remove ", path.string(), ": ", ec.message());
    }
    moved_events += moving;
  }
  return moved_events;
}

// Whether anything of the steps a run redoes was set aside.
bool moved_steps(const SupersededHistory& history) {
  return !history.checkpoints.empty() || history.metric_rows > 0 || history.events > 0 ||
         history.damaged_event_files > 0;
}

// Whether `text` is a resolved config as a run writes it (every key, dpunet's layout):
// each checkpoint holds its own copy.
bool written_by_a_run(const std::string& text) {
  try {
    return config::to_yaml(config::parse_config(text, "config.yaml")) == text;
  } catch (const std::exception&) {
    return false;
  }
}

// A copy of RUN/config.yaml in `folder` when `config_text` replaces it next (atomically:
// the run directory is never without one) and it differs: along with the history of
// `steps_moved`, else when no run wrote it (the file the run was started from, with its
// comments). A resume that changes a key replaces the run's own copy quietly: its log
// lists the keys, and the checkpoints keep their configs. Returns whether it copied.
bool set_aside_config(const std::string& run_dir, const std::string& config_text, const std::string& folder,
                      bool steps_moved) {
  const std::string path = run_dir + "/config.yaml";
  if (!exists_or_fail(path)) return false;
  const std::string earlier = read_file(path);
  if (earlier == config_text || (!steps_moved && written_by_a_run(earlier))) return false;
  std::error_code ec;
  fs::create_directories(folder, ec);
  DPUNET_CHECK(!ec, "cannot create ", folder, ": ", ec.message());
  write_file_atomically(folder + "/config.yaml", earlier);
  return true;
}

}  // namespace

SupersededHistory set_aside_superseded_history(const std::string& run_dir, std::optional<int64_t> resume_step,
                                               bool validation_pending, const std::string& config_text) {
  SupersededHistory history;
  const checkpoint::CheckpointStore store(run_dir);
  history.partial_writes = store.remove_partial_writes();
  const std::string folder = new_folder_name(run_dir);
  history.checkpoints = store.set_aside(resume_step, folder + "/checkpoints");
  history.metric_rows = set_aside_metric_rows(run_dir, resume_step, validation_pending, folder);
  history.events = set_aside_events(run_dir, resume_step, validation_pending, folder, history.damaged_event_files);
  history.config = set_aside_config(run_dir, config_text, folder, moved_steps(history));
  std::error_code ec;
  if (fs::exists(folder, ec)) history.folder = folder;
  return history;
}

std::string describe(const SupersededHistory& history) {
  std::string text;
  const bool steps_moved = moved_steps(history);
  if (!steps_moved && history.config) {
    text = "the earlier config.yaml, which differs from this run's config, is kept in " + history.folder;
  } else if (!history.folder.empty()) {
    int64_t checkpoints = 0;
    for (const std::string& name : history.checkpoints)
      checkpoints += checkpoint::CheckpointStore::step_of(name) ? 1 : 0;
    text = "moved " + std::to_string(checkpoints) + " checkpoint(s) and " + std::to_string(history.metric_rows) +
           " metrics row(s)" +
           (history.events > 0 ? " (and " + std::to_string(history.events) + " TensorBoard event(s))" : "") +
           " of steps this run redoes to " + history.folder + (history.config ? ", with the earlier config.yaml" : "");
    if (history.damaged_event_files > 0) {
      text += "; " + std::to_string(history.damaged_event_files) +
              " TensorBoard file(s) had a damaged record: what followed it was moved there too, unread";
    }
  }
  if (history.partial_writes > 0) {
    text += std::string(text.empty() ? "" : "; ") + "removed " + std::to_string(history.partial_writes) +
            " unfinished checkpoint write(s)";
  }
  return text;
}

}  // namespace dpunet::train
