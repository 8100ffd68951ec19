// OutputManifest and find_earlier_outputs.
#include "infer/output_manifest.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/text.h"

namespace dpunet::infer {
namespace fs = std::filesystem;
namespace {

constexpr const char* kManifestPrefix = "predict-files";

bool is_manifest(const std::string& name) {
  return name.rfind(kManifestPrefix, 0) == 0 && ends_with(name, ".txt");
}

// The names predict gives its files, whoever wrote them.
bool named_like_a_prediction(const std::string& name) {
  const bool h5 = ends_with(name, ".h5") || ends_with(name, ".h5.partial");
  return name == "eval.json" || (h5 && name.rfind("predictions", 0) == 0) || ends_with(name, "_mask.png") ||
         ends_with(name, "_overlay.png");
}

}  // namespace

OutputManifest::OutputManifest(const std::string& directory, int rank, int world_size) {
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
}

void OutputManifest::add(const std::string& file_name) {
  errno = 0;
  out_ << file_name << "\n" << std::flush;
  DPUNET_CHECK(out_, path_, ": cannot list ", file_name, " (", errno != 0 ? std::strerror(errno) : "write failed",
               "; is the disk full?)");
}

EarlierOutputs find_earlier_outputs(const std::string& directory) {
  EarlierOutputs found;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return found;
  std::set<std::string> listed, present;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    present.insert(name);
    if (!is_manifest(name)) continue;
    listed.insert(name);
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      // Names only, never paths: a manifest cannot reach outside its folder.
      if (!line.empty() && line.find('/') == std::string::npos && line != "." && line != "..") listed.insert(line);
    }
  }
  for (const std::string& name : present) {
    const std::string path = (fs::path(directory) / name).string();
    if (listed.count(name) != 0) {
      found.written.push_back(path);
    } else if (named_like_a_prediction(name)) {
      found.unlisted.push_back(path);
    }
  }
  return found;
}

}  // namespace dpunet::infer
