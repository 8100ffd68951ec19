// remove_tree: a depth-first walk with lstat, unlink and rmdir.
#include "common/remove_tree.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace dpunet {

bool remove_tree(const std::string& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return true;  // already gone
  if (!S_ISDIR(info.st_mode)) return unlink(path.c_str()) == 0;
  bool ok = true;
  if (DIR* dir = opendir(path.c_str())) {
    while (const dirent* entry = readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      ok = remove_tree(path + "/" + entry->d_name) && ok;
    }
    closedir(dir);
  }
  return rmdir(path.c_str()) == 0 && ok;
}

}  // namespace dpunet
