// exists_or_fail, directory_entries and fail_on_broken_link over std::filesystem's error codes.
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

void fail_on_broken_link(const fs::directory_entry& entry) {
  std::error_code ec;
  if (!entry.is_symlink(ec) || fs::exists(entry.path(), ec)) return;
  DPUNET_FAIL(entry.path().string(), ": a link to ", fs::read_symlink(entry.path(), ec).string(),
              ", which does not exist: mount or restore it, or remove the link");
}

}  // namespace dpunet
