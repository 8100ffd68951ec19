// CheckpointStore.
#include "checkpoint/store.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "common/atomic_file.h"
#include "common/error.h"

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
  std::error_code ec;
  if (!fs::is_directory(directory_, ec)) return paths;
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && entry.path().extension() == ".ckpt") paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());  // zero-padded step numbers sort by step
  return paths;
}

std::optional<std::string> CheckpointStore::read_pointer(const std::string& name) const {
  std::error_code ec;
  const std::string pointer = directory_ + "/" + name;
  if (!fs::exists(pointer, ec)) return std::nullopt;
  std::string target = read_file(pointer);
  while (!target.empty() && (target.back() == '\n' || target.back() == ' ')) target.pop_back();
  if (target.empty()) return std::nullopt;
  return directory_ + "/" + target;
}

void CheckpointStore::write_pointer(const std::string& name, const std::string& target) const {
  write_file_atomically(directory_ + "/" + name, fs::path(target).filename().string() + "\n");
}

std::optional<std::string> CheckpointStore::best() const {
  return read_pointer("best");
}

void CheckpointStore::commit(int64_t step, const std::function<void(const std::string&)>& write, bool best,
                             int64_t keep_last) {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  DPUNET_CHECK(!ec, "cannot create ", directory_, ": ", ec.message());
  const std::string path = path_for_step(step);
  write(path);
  write_pointer("latest", path);
  if (best) write_pointer("best", path);
  const std::optional<std::string> kept_best = read_pointer("best");
  std::vector<std::string> all = list();
  const auto excess = static_cast<int64_t>(all.size()) - keep_last;
  for (int64_t i = 0; i < excess; ++i) {
    if (kept_best && fs::equivalent(all[i], *kept_best, ec)) continue;
    fs::remove(all[i], ec);
  }
}

std::optional<std::string> CheckpointStore::latest_valid(const std::function<void(const std::string&)>& warn) const {
  std::vector<std::string> candidates = list();
  std::reverse(candidates.begin(), candidates.end());  // newest first
  if (const auto latest = read_pointer("latest")) {
    candidates.erase(std::remove(candidates.begin(), candidates.end(), *latest), candidates.end());
    candidates.insert(candidates.begin(), *latest);
  }
  for (const std::string& path : candidates) {
    std::string why;
    if (is_valid_checkpoint(path, &why)) return path;
    warn("skipping damaged checkpoint: " + why);
  }
  return std::nullopt;
}

}  // namespace dpunet::checkpoint
