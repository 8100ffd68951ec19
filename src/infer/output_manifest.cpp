// OutputManifest and find_earlier_outputs.
#include "infer/output_manifest.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/file_listing.h"
#include "common/text.h"

namespace dpunet::infer {
namespace fs = std::filesystem;
namespace {

constexpr const char* kManifestPrefix = "predict-files";
constexpr const char* kManifestHeader = "# dpunet predict: files written";

// predict-files.txt or predict-files-rank<digits>.txt, and nothing else.
bool is_manifest_name(const std::string& name) {
  if (name == std::string(kManifestPrefix) + ".txt") return true;
  const std::string rank_prefix = std::string(kManifestPrefix) + "-rank";
  if (name.rfind(rank_prefix, 0) != 0 || !ends_with(name, ".txt")) return false;
  const std::string digits = name.substr(rank_prefix.size(), name.size() - rank_prefix.size() - 4);
  return !digits.empty() && std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); });
}

// "SIZE MTIME_NS" of a file as it is now; empty when it cannot be read.
std::string stamp_of(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "";
  const auto time = fs::last_write_time(path, ec);
  if (ec) return "";
  return std::to_string(size) + " " +
         std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count());
}

// The names predict gives its files, whoever wrote them.
bool named_like_a_prediction(const std::string& name) {
  const bool h5 = ends_with(name, ".h5") || ends_with(name, ".h5.partial");
  return name == "eval.json" || (h5 && name.rfind("predictions", 0) == 0) || ends_with(name, "_mask.png") ||
         ends_with(name, "_overlay.png");
}

}  // namespace

OutputManifest::OutputManifest(const std::string& directory, int rank, int world_size) : directory_(directory) {
  char name[64];
  if (world_size == 1) {
    std::snprintf(name, sizeof(name), "%s.txt", kManifestPrefix);
  } else {
    std::snprintf(name, sizeof(name), "%s-rank%03d.txt", kManifestPrefix, rank);
  }
  path_ = (fs::path(directory) / name).string();
  errno = 0;
  out_.open(path_, std::ios::trunc);
  DPUNET_CHECK(out_.is_open(), path_, ": cannot create the list of this prediction's files (",
               errno != 0 ? std::strerror(errno) : "open failed", ")");
  append(kManifestHeader);
}

void OutputManifest::add(const std::string& file_name) {
  append(file_name);
}

void OutputManifest::written(const std::string& file_name) {
  append(file_name + "\t" + stamp_of(fs::path(directory_) / file_name));
}

void OutputManifest::append(const std::string& line) {
  errno = 0;
  out_ << line << "\n" << std::flush;
  DPUNET_CHECK(out_, path_, ": cannot write the list of this prediction's files (",
               errno != 0 ? std::strerror(errno) : "write failed", "; is the disk full?)");
}

std::string set_aside_folder(const std::string& directory) {
  return (fs::path(directory) / ".earlier-prediction").string();
}

EarlierOutputs find_earlier_outputs(const std::string& directory) {
  EarlierOutputs found;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return found;
  // An empty one (its files moved back by hand) sets nothing aside.
  const std::string set_aside = set_aside_folder(directory);
  if (fs::exists(fs::symlink_status(set_aside, ec)) && !fs::is_empty(set_aside, ec)) found.set_aside = set_aside;
  // Name -> its last stamp ("" while being written, when a run was killed), and the
  // manifest that lists it.
  std::map<std::string, std::string> listed, listed_by;
  std::set<std::string> present;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    // Hidden files (macOS's ._a_mask.png beside a copied prediction) are no one's outputs.
    if (!is_hidden(entry.path())) present.insert(entry.path().filename().string());
  }
  std::set<std::string> empty_manifests;
  for (const std::string& name : present) {
    if (!is_manifest_name(name)) continue;
    std::ifstream in((fs::path(directory) / name).string());
    std::string line;
    if (!std::getline(in, line) || line != kManifestHeader) continue;  // a file of that name, not predict's
    listed[name] = stamp_of(fs::path(directory) / name);
    bool lists_a_file_here = false;
    while (std::getline(in, line)) {
      const size_t tab = line.find('\t');
      const std::string file = line.substr(0, tab);
      // Names only, never paths: a manifest cannot reach outside its folder.
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") continue;
      listed[file] = tab == std::string::npos ? "" : line.substr(tab + 1);
      listed_by[file] = name;
      lists_a_file_here = lists_a_file_here || (present.count(file) != 0 && !is_manifest_name(file));
    }
    if (!lists_a_file_here) empty_manifests.insert(name);
  }
  for (const std::string& name : present) {
    if (empty_manifests.count(name) != 0) {
      found.empty.push_back((fs::path(directory) / name).string());
      continue;
    }
    const std::string path = (fs::path(directory) / name).string();
    const auto it = listed.find(name);
    // Listed and, once written, unchanged since: a file copied over it is not predict's.
    const bool ours =
        it != listed.end() && (it->second.empty() || is_manifest_name(name) || it->second == stamp_of(path));
    // A listed file's write cut short (a run killed inside it) leaves its temporary: the
    // run's, kept or cleared with it.
    const std::optional<std::string> temporary_of = atomic_write_target(name);
    const bool temporary = temporary_of && listed_by.count(*temporary_of) != 0;
    if (temporary && empty_manifests.count(listed_by.at(*temporary_of)) != 0) {
      found.empty.push_back(path);
    } else if (ours || temporary) {
      found.written.push_back(path);
    } else if (named_like_a_prediction(name) || is_manifest_name(name)) {
      found.unlisted.push_back(path);
    }
  }
  return found;
}

}  // namespace dpunet::infer
