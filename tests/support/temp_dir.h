// A fresh directory for one test, removed with its contents when the test ends.
#pragma once

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/remove_tree.h"

namespace dpunet::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/dpunet-test-XXXXXX";
    DPUNET_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot create a temporary directory");
    path_ = pattern;
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace dpunet::test
