// existing_shards, clear_output_folder.
#include "data/output_folder.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include "common/error.h"

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

}  // namespace dpunet::data
