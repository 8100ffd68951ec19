// Crash-safe file replacement: the bytes go to a temporary file in the same directory,
// which is flushed to disk and renamed over the target, and the directory entry is
// synced. A crash or a full disk at any point leaves the old file intact. A link is
// written through, and the permissions of a replaced file of ours are kept.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpunet {

// Throws dpunet::Error naming `path` and the system's reason (e.g. no space left).
void write_file_atomically(const std::string& path, const std::string& bytes);
// The same for a file made of `pieces` one after the other, without joining them first.
void write_file_atomically(const std::string& path, const std::vector<std::string_view>& pieces);

// The file a write to `path` replaces: `path`, or where the link at `path` leads (a
// metrics file or a plot linked into another folder is written there, as opening it
// would, instead of the link being swapped for a file of its own).
std::string replaced_file(const std::string& path);

// Gives the new file `fd`, which is to replace `replaced`, that file's permissions when
// it is a file of ours; 0, or the errno of a failure.
int keep_permissions(const std::string& replaced, int fd);

// The temporary write_file_atomically writes `path`'s bytes to first, NAME.tmp.PID, for
// writers of their own (libpng's) that rename it over `path` once it is complete.
std::string temporary_path_for(const std::string& path);

// Flushes the file at `path`, written by a writer of its own (HDF5's), to disk: before it
// is renamed into place, so that a crash cannot leave it empty under its final name.
// Throws dpunet::Error naming `path` when the system cannot.
void sync_file(const std::string& path);

// Makes the entries of `directory` (a file renamed or a folder made in it) durable, where
// the file system can.
void sync_directory(const std::string& directory);

// When `name` (a file name) is a temporary of write_file_atomically, NAME.tmp.PID, the
// NAME it was to replace; otherwise nullopt. Only the ending counts: a host name with
// ".tmp." inside an event file's name does not make it one.
std::optional<std::string> atomic_write_target(const std::string& name);

// Reads a whole file; throws naming `path` when it cannot.
std::string read_file(const std::string& path);

}  // namespace dpunet
