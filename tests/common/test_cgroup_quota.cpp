// cgroup_cpu_quota: the CPUs a container's quota grants, as cgroup v2 and v1 write it.
#include "support/catch.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "common/atomic_file.h"
#include "common/cgroup_quota.h"
#include "support/temp_dir.h"

using dpunet::cgroup_cpu_quota;

namespace {

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  dpunet::write_file_atomically(path, text);
}

}  // namespace

TEST_CASE("a cgroup v2 quota is the smallest cpu.max of the process's cgroup and those above it", "[common]") {
  dpunet::test::TempDir root;
  const std::string membership = "0::/kubepods/pod7/box\n";
  // None anywhere: "max" says so.
  write(root / "kubepods/pod7/box/cpu.max", "max 100000\n");
  CHECK_FALSE(cgroup_cpu_quota(root.path(), membership).has_value());
  // The pod's 2.5 CPUs, rounded up, under a node-wide 8 and a box without one.
  write(root / "kubepods/pod7/cpu.max", "250000 100000\n");
  write(root / "kubepods/cpu.max", "800000 100000\n");
  auto quota = cgroup_cpu_quota(root.path(), membership);
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 3);
  CHECK(quota->group == "/kubepods/pod7");
  // The box's own, smaller, wins; a trailing slash in the path changes nothing.
  write(root / "kubepods/pod7/box/cpu.max", "50000 100000\n");
  quota = cgroup_cpu_quota(root.path(), "0::/kubepods/pod7/box/\n");
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 1);
  CHECK(quota->group == "/kubepods/pod7/box");
  // A container sees its own cgroup at the mount's root.
  dpunet::test::TempDir container;
  write(container / "cpu.max", "400000 100000\n");
  quota = cgroup_cpu_quota(container.path(), "0::/\n");
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 4);
  CHECK(quota->group == "/");
  // A path without its leading slash is read as with it.
  CHECK(cgroup_cpu_quota(root.path(), "0::kubepods/pod7/box\n")->cpus == 1);
  // Junk is no quota, not an error.
  write(container / "cpu.max", "lots 100000\n");
  CHECK_FALSE(cgroup_cpu_quota(container.path(), "0::/\n").has_value());
}

TEST_CASE("a cgroup v1 quota is cpu.cfs_quota_us over cpu.cfs_period_us, -1 for none", "[common]") {
  dpunet::test::TempDir root;
  const std::string membership = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n";
  CHECK_FALSE(cgroup_cpu_quota(root.path(), membership).has_value());
  write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  write(root / "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK_FALSE(cgroup_cpu_quota(root.path(), membership).has_value());
  write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
  auto quota = cgroup_cpu_quota(root.path(), membership);
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 2);
  // The "cpu" mount (a symbolic link to the joint one on most systems) comes first.
  write(root / "cpu/docker/abc/cpu.cfs_quota_us", "300000\n");
  write(root / "cpu/docker/abc/cpu.cfs_period_us", "100000\n");
  quota = cgroup_cpu_quota(root.path(), membership);
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 3);
  // A cgroup v2 file, where there is one, decides.
  write(root / "cpu.max", "100000 100000\n");
  quota = cgroup_cpu_quota(root.path(), membership + "0::/\n");
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 1);
}

TEST_CASE("this process's quota is read under DPUNET_CGROUP_ROOT, as the launcher reads it", "[common]") {
  dpunet::test::TempDir root;
  // At the root, which this process's cgroup, whatever it is, lies under.
  write(root / "cpu.max", "400000 100000\n");
  std::optional<std::string> saved;
  if (const char* old = std::getenv("DPUNET_CGROUP_ROOT")) saved = old;
  setenv("DPUNET_CGROUP_ROOT", root.path().c_str(), 1);
  const auto quota = cgroup_cpu_quota();
  if (saved) {
    setenv("DPUNET_CGROUP_ROOT", saved->c_str(), 1);
  } else {
    unsetenv("DPUNET_CGROUP_ROOT");
  }
  REQUIRE(quota.has_value());
  CHECK(quota->cpus == 4);
}
