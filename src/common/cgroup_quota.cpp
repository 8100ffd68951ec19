// The same reading as dpunet-launch's cgroup_cpus, so the launcher's thread count and a
// rank's own agree.
#include "common/cgroup_quota.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace dpunet {
namespace {

// A positive whole number, or nothing ("max", "-1", empty, junk).
std::optional<long long> positive(const std::string& word) {
  if (word.empty() || word.find_first_not_of("0123456789") != std::string::npos || word.size() > 18) return {};
  const long long value = std::stoll(word);
  if (value <= 0) return {};
  return value;
}

// Reads the first two words of `file`; false when it cannot be read.
bool read_words(const std::filesystem::path& file, std::string& first, std::string& second) {
  std::ifstream in(file);
  if (!in) return false;
  in >> first >> second;
  return !in.bad();
}

std::optional<std::string> read_word(const std::filesystem::path& file) {
  std::string first, second;
  if (!read_words(file, first, second)) return {};
  return first;
}

int rounded_up(long long quota, long long period) {
  return static_cast<int>(std::min<long long>((quota + period - 1) / period, std::numeric_limits<int>::max()));
}

// The cgroup path of the line whose controller list satisfies `wanted`.
template <typename Wanted>
std::optional<std::string> cgroup_path(const std::string& membership, Wanted wanted) {
  std::istringstream lines(membership);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? std::string::npos : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    if (wanted(line.substr(0, first), line.substr(first + 1, second - first - 1))) return line.substr(second + 1);
  }
  return {};
}

bool names_cpu_controller(const std::string& controllers) {
  std::istringstream list(controllers);
  std::string controller;
  while (std::getline(list, controller, ','))
    if (controller == "cpu") return true;
  return false;
}

// "/a/b" for "/a/b/" (and for "a/b", which the kernel never writes); "" for the root.
std::string as_cgroup_path(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (!path.empty() && path.front() != '/') path.insert(path.begin(), '/');
  return path;
}

std::optional<CgroupQuota> version2_quota(const std::filesystem::path& root, const std::string& membership,
                                          bool& found) {
  const std::string own = as_cgroup_path(
      cgroup_path(membership, [](const std::string& id, const std::string&) { return id == "0"; }).value_or(""));
  std::optional<CgroupQuota> smallest;
  std::string relative = own;
  while (true) {
    const std::filesystem::path dir = relative.empty() ? root : root / relative.substr(1);
    std::string quota, period;
    if (read_words(dir / "cpu.max", quota, period)) {
      found = true;
      const auto q = positive(quota), p = positive(period);
      if (q && p && (!smallest || rounded_up(*q, *p) < smallest->cpus))
        smallest = CgroupQuota{rounded_up(*q, *p), relative.empty() ? "/" : relative};
    }
    if (relative.empty()) break;
    relative = relative.substr(0, relative.rfind('/'));
  }
  return smallest;
}

std::optional<CgroupQuota> version1_quota(const std::filesystem::path& root, const std::string& membership) {
  const std::string own =
      as_cgroup_path(cgroup_path(membership, [](const std::string&, const std::string& controllers) {
                       return names_cpu_controller(controllers);
                     }).value_or(""));
  for (const std::string& mount : {std::string("cpu"), std::string("cpu,cpuacct")}) {
    for (const std::string& relative : {own, std::string()}) {
      const std::filesystem::path dir = root / (mount + relative);
      const auto quota = read_word(dir / "cpu.cfs_quota_us");
      const auto period = read_word(dir / "cpu.cfs_period_us");
      if (!quota || !period) continue;
      const auto q = positive(*quota), p = positive(*period);
      if (q && p) return CgroupQuota{rounded_up(*q, *p), mount + (relative.empty() ? "/" : relative)};
      return {};
    }
  }
  return {};
}

}  // namespace

std::optional<CgroupQuota> cgroup_cpu_quota(const std::filesystem::path& root, const std::string& membership) {
  bool version2 = false;
  std::optional<CgroupQuota> quota = version2_quota(root, membership, version2);
  if (version2) return quota;
  return version1_quota(root, membership);
}

std::optional<CgroupQuota> cgroup_cpu_quota() {
  const char* root = std::getenv("DPUNET_CGROUP_ROOT");
  std::ifstream in("/proc/self/cgroup");
  std::stringstream membership;
  membership << in.rdbuf();
  return cgroup_cpu_quota(root != nullptr && *root != '\0' ? root : "/sys/fs/cgroup", membership.str());
}

}  // namespace dpunet
