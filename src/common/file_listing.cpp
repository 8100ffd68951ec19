// exists_or_fail, directory_entries and fail_on_broken_link over std::filesystem's error codes.
#include "common/file_listing.h"

#include "common/error.h"

namespace dpunet {
namespace fs = std::filesystem;

void fail_broken_link(const fs::path& link) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  DPUNET_FAIL(link.string(), ": a link to ",
              ec ? "a target that cannot be read (" + ec.message() + ")" : target.string(),
              ", which does not exist: mount or restore it, or remove the link");
}

bool exists_or_fail(const std::string& path) {
  std::error_code ec;
  // libstdc++ clears `ec` for a missing path (or a missing parent) and keeps it otherwise.
  const bool there = fs::exists(path, ec);
  DPUNET_CHECK(!ec, "cannot read ", path, ": ", ec.message());
  return there;
}

std::vector<fs::path> directory_entries(const std::string& directory) {
  std::vector<fs::path> entries;
  std::error_code ec;
  if (!exists_or_fail(directory)) {
    // A link to no folder (checkpoints on a scratch disk not mounted) is not an empty
    // one: taken so, a resumed run would start afresh and set its history aside.
    if (fs::is_symlink(directory, ec)) fail_broken_link(directory);
    return entries;
  }
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
  DPUNET_CHECK(!ec, "cannot list ", directory, ": ", ec.message());
  return entries;
}

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

void fail_on_broken_link(const fs::directory_entry& entry) {
  std::error_code ec;
  if (!entry.is_symlink(ec) || fs::exists(entry.path(), ec)) return;
  fail_broken_link(entry.path());
}

}  // namespace dpunet
