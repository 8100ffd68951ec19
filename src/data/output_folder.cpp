// existing_shards, clear_output_folder.
#include "data/output_folder.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/error.h"
#include "common/process_label.h"
#include "common/remove_tree.h"

namespace dpunet::data {

namespace fs = std::filesystem;

std::vector<std::string> existing_shards(const std::string& directory, const std::vector<std::string>& prefixes) {
  std::vector<std::string> found;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return found;
  static const std::regex number(R"(-[0-9]+\.h5)");
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    for (const std::string& prefix : prefixes) {
      if (name.rfind(prefix, 0) == 0 && std::regex_match(name.substr(prefix.size()), number)) {
        found.push_back(entry.path().string());
        break;
      }
    }
  }
  DPUNET_CHECK(!ec, directory, ": cannot list the folder: ", ec.message());
  std::sort(found.begin(), found.end());
  return found;
}

void clear_output_folder(const std::string& directory, const std::vector<std::string>& prefixes, bool overwrite) {
  const std::vector<std::string> shards = existing_shards(directory, prefixes);
  if (shards.empty()) return;
  DPUNET_CHECK(overwrite, directory, " already holds ", shards.size(), " shard(s) (", shards.front(),
               shards.size() > 1 ? ", ..." : "",
               "); the new ones would replace or mix with them. Choose another --out, or pass --overwrite to "
               "remove them first");
  for (const std::string& shard : shards) {
    std::error_code ec;
    fs::remove(shard, ec);
    DPUNET_CHECK(!ec, shard, ": cannot remove it: ", ec.message());
  }
}

namespace {

// ".dpunet-staging-HOST-": hidden and not a shard name, so no dataset glob reads it; the
// host, so that a folder on a shared file system is judged only where its PID means
// something.
std::string staging_prefix() {
  return ".dpunet-staging-" + host_name() + "-";
}

// Staging folders of writers that were killed (Ctrl-C, SIGKILL) on this machine: their
// process is gone, so nothing will move or remove their shards.
void remove_abandoned_staging(const std::string& directory) {
  const std::string prefix = staging_prefix();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    // The whole rest must be the PID: host "vm" is a prefix of host "vm-2"'s folders,
    // whose PIDs mean nothing here.
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (*end != '\0' || name.size() == prefix.size()) continue;
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) remove_tree(entry.path().string());
  }
}

}  // namespace

StagedOutput::StagedOutput(std::string directory, std::vector<std::string> prefixes, bool overwrite)
    : directory_(std::move(directory)), prefixes_(std::move(prefixes)), overwrite_(overwrite) {
  if (!overwrite_) clear_output_folder(directory_, prefixes_, false);
  std::error_code ec;
  made_directory_ = !fs::exists(directory_, ec);
  fs::create_directories(directory_, ec);
  DPUNET_CHECK(!ec, directory_, ": cannot create the directory: ", ec.message());
  remove_abandoned_staging(directory_);
  // Inside the directory, so that the moves are renames on one file system.
  staging_ = (fs::path(directory_) / (staging_prefix() + std::to_string(::getpid()))).string();
  remove_tree(staging_);
  fs::create_directory(staging_, ec);
  DPUNET_CHECK(!ec, staging_, ": cannot create the directory: ", ec.message());
}

StagedOutput::~StagedOutput() {
  remove_tree(staging_);
  if (!committed_ && made_directory_) {
    std::error_code ec;
    fs::remove(directory_, ec);  // only when empty
  }
}

std::vector<std::string> StagedOutput::commit(const std::vector<std::string>& staged) {
  clear_output_folder(directory_, prefixes_, overwrite_);
  std::vector<std::string> moved;
  for (const std::string& file : staged) {
    const std::string target = (fs::path(directory_) / fs::path(file).filename()).string();
    std::error_code ec;
    fs::rename(file, target, ec);
    DPUNET_CHECK(!ec, file, ": cannot move it to ", target, ": ", ec.message());
    moved.push_back(target);
  }
  committed_ = true;
  return moved;
}

}  // namespace dpunet::data
