// check_out_folder and check_earlier_outputs.
#include "app/predict_out_folder.h"

#include <filesystem>
#include <set>

#include "common/error.h"
#include "data/dataset.h"

namespace dpunet::app {
namespace {

// The folders `input` (a folder, a file or a glob) names its files in: a glob's matches
// may lie in several ('scans/*/*.png').
std::set<std::string> input_folders(const std::string& input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(input, ec)) return {input};
  const auto parent_of = [](const std::string& path) {
    const fs::path parent = fs::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
  };
  std::set<std::string> folders;
  if (!fs::exists(input, ec) && input.find_first_of("*?[") != std::string::npos) {
    for (const std::string& path : data::glob_paths(input)) folders.insert(parent_of(path));
  }
  if (folders.empty()) folders.insert(parent_of(input));
  return folders;
}

}  // namespace

void check_out_folder(const std::string& out, const std::string& input, const std::string& masks) {
  std::error_code ec;
  std::set<std::string> folders = input_folders(input);
  if (!masks.empty()) folders.insert(masks);
  for (const std::string& folder : folders) {
    DPUNET_CHECK(!std::filesystem::equivalent(out, folder, ec), "predict: --out ", out,
                 " is the folder of the inputs or masks (", folder,
                 "); predictions written there could replace masks and be read as inputs next time: choose another "
                 "folder");
  }
}

void check_earlier_outputs(const std::string& out, bool overwrite, const infer::EarlierOutputs& earlier) {
  const auto listing = [](const std::vector<std::string>& files) {
    return files.front() + (files.size() > 1 ? " and " + std::to_string(files.size() - 1) + " more" : "");
  };
  DPUNET_CHECK(earlier.unlisted.empty(), "predict: --out ", out, " holds ", listing(earlier.unlisted),
               ", named like this command's outputs but not written by it as they are now (no "
               "predict-files*.txt there lists them, or they changed since, as the files of a folder copied without "
               "their times do: cp -a keeps them; a ground-truth mask? a prediction of an older dpunet?). This run "
               "could overwrite them, so it does not start, even with --overwrite: choose another --out, or move "
               "those files");
  DPUNET_CHECK(earlier.written.empty() || overwrite, "predict: --out ", out, " already holds ", earlier.written.size(),
               " file(s) of an earlier prediction (", listing(earlier.written),
               "); they would mix with this run's. Choose another --out, or pass --overwrite to remove them first");
}

}  // namespace dpunet::app
