// exists_or_fail and directory_entries over std::filesystem's error codes.
#include "common/file_listing.h"

#include "common/error.h"

namespace dpunet {
namespace fs = std::filesystem;

bool exists_or_fail(const std::string& path) {
  std::error_code ec;
  // libstdc++ clears `ec` for a missing path (or a missing parent) and keeps it otherwise.
  const bool there = fs::exists(path, ec);
  DPUNET_CHECK(!ec, "cannot read ", path, ": ", ec.message());
  return there;
}

std::vector<fs::path> directory_entries(const std::string& directory) {
  std::vector<fs::path> entries;
  if (!exists_or_fail(directory)) return entries;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
  DPUNET_CHECK(!ec, "cannot list ", directory, ": ", ec.message());
  return entries;
}

}  // namespace dpunet
