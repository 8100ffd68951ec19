// Existence checks and directory listings that tell "absent" from "unreadable". Taking
// an error (permissions, I/O, a stale NFS handle) for absence would, for a run
// directory, start a resumed run afresh and set its history aside.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace dpunet {

// Whether `path` exists; any other error is a dpunet::Error naming the path.
bool exists_or_fail(const std::string& path);
// The entries of `directory`, none when it does not exist; an error reading it is a
// dpunet::Error naming the directory.
std::vector<std::filesystem::path> directory_entries(const std::string& directory);

}  // namespace dpunet
