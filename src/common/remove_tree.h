// Deletes a directory tree. std::filesystem::remove_all is not used: libtorch exports a
// copy of it that crashes when the dynamic linker binds the call to that copy.
#pragma once

#include <string>

namespace dpunet {

// Removes `path` and everything under it; missing paths are fine. Returns false when
// something could not be removed.
bool remove_tree(const std::string& path);

}  // namespace dpunet
