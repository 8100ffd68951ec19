// `dpunet version` and `--version`: what a bug report needs, without a GPU or MPI job.
#include "support/catch.h"

#include "support/run_command.h"

TEST_CASE("version names dpunet, LibTorch, NCCL, MPI and HDF5", "[app]") {
  const auto version = dpunet::test::run_command(DPUNET_BINARY " version 2>&1");
  INFO(version.output);
  CHECK(version.exit_code == 0);
  CHECK_THAT(version.output, HasSubstr("dpunet ") && HasSubstr("libtorch ") && HasSubstr("NCCL path: ") &&
                                 HasSubstr("MPI: ") && HasSubstr("HDF5 "));
  CHECK_THAT(version.output, !HasSubstr("MPI: unknown") && !HasSubstr("HDF5 unknown"));
  const auto flag = dpunet::test::run_command(DPUNET_BINARY " --version 2>&1");
  CHECK(flag.exit_code == 0);
  CHECK_THAT(flag.output, HasSubstr("dpunet "));
}
