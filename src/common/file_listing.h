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
// The entries of `directory`, none when it does not exist; an error reading it, or a
// link to a folder that is not there, is a dpunet::Error naming the directory.
std::vector<std::filesystem::path> directory_entries(const std::string& directory);

// A name beginning with '.': what copies to other file systems (macOS's "._a.png"), editors
// and tools leave beside the files, which a folder's listing passes over as ls does.
bool is_hidden(const std::filesystem::path& path);

// Throws naming `link`, a symbolic link to nothing, and where it points.
[[noreturn]] void fail_broken_link(const std::filesystem::path& link);

// Throws naming `entry` when it is a symbolic link to nothing (a disk not mounted): a
// listing that passed over it as "not a file" would read a dataset short without a word.
// Callers ask it of the names they would have taken.
void fail_on_broken_link(const std::filesystem::directory_entry& entry);

}  // namespace dpunet
