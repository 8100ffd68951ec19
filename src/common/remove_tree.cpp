// remove_tree: a depth-first walk with lstat, unlink and rmdir.
#include "common/remove_tree.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace dpunet {

bool remove_tree(const std::string& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return errno == ENOENT;  // already gone, or unreadable
  if (!S_ISDIR(info.st_mode)) return unlink(path.c_str()) == 0;
  // The names first, then the removals: entries removed while a listing is read may be
  // skipped by it (network file systems do), which would leave the folder behind.
  std::vector<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (const dirent* entry = readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      names.emplace_back(entry->d_name);
    }
    closedir(dir);
  }
  bool ok = true;
  for (const std::string& name : names) ok = remove_tree(path + "/" + name) && ok;
  return rmdir(path.c_str()) == 0 && ok;
}

}  // namespace dpunet
