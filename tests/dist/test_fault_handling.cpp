// A rank that fails, leaves, stalls or holds a different model must take the whole job
// down with a message, never leave it hanging. Each case starts a fresh job with mpirun.
#include <regex>
#include <string>

#include <torch/cuda.h>
#include "support/catch.h"

#include "dist/make_communicator.h"
#include "support/run_command.h"

namespace {

using JobResult = dpunet::test::CommandResult;

// `timeout` is the hang detector: exit code 124 means the job never ended by itself.
JobResult run_job(const std::string& mode, int ranks, int bad_rank) {
  return dpunet::test::run_command("timeout 90 " DPUNET_MPI_LAUNCHER " " + std::to_string(ranks) +
                                   " " DPUNET_FAULT_PROBE " " + mode + " " + std::to_string(bad_rank) + " 2>&1");
}

}  // namespace

TEST_CASE("Fault probe: a healthy job ends cleanly", "[dist][fault]") {
  const JobResult job = run_job("ok", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code == 0);
}

TEST_CASE("A rank that throws mid-step ends every rank with its message", "[dist][fault]") {
  const JobResult job = run_job("throw", 3, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  REQUIRE(job.output.find("dpunet: error (rank 1 on") != std::string::npos);
  REQUIRE(job.output.find("injected failure in step 1") != std::string::npos);
}

TEST_CASE("A rank that exits mid-step ends the job instead of hanging it", "[dist][fault]") {
  const JobResult job = run_job("exit", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  // mpirun reports the rank's exit status ("Exit code:    3"); the other rank did not wait
  // for its collective's timeout to see it.
  CHECK(std::regex_search(job.output, std::regex("Exit code: +3\\b")));
  CHECK_THAT(job.output, !HasSubstr("has not completed after"));
  CHECK(job.seconds < 60);
}

TEST_CASE("A rank that stops communicating makes the others time out with a message", "[dist][fault]") {
  const JobResult job = run_job("stall", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  REQUIRE(job.output.find("has not completed after 3 s [rank 0 on") != std::string::npos);
  REQUIRE(job.seconds < 60);  // well before the stalled rank would have woken up
}

TEST_CASE("A stalled rank ends the job also when collectives block inside MPI", "[dist][fault]") {
  const JobResult job = run_job("stall-inline", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  REQUIRE(job.output.find("has not completed after 3 s on rank 0 on") != std::string::npos);
  REQUIRE(job.output.find("this rank ends now") != std::string::npos);
  REQUIRE(job.seconds < 60);
}

TEST_CASE("Models that differ across ranks stop the job with the difference named", "[dist][fault]") {
  const JobResult job = run_job("mismatch", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  REQUIRE(job.output.find("differs between rank 1 and rank 0") != std::string::npos);
}

TEST_CASE("With collectives checked, a rank issuing one more stops the job with every rank's view", "[dist][fault]") {
  const JobResult job = run_job("extra-collective", 2, 1);
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  CHECK_THAT(job.output, HasSubstr("about to issue different collectives") && HasSubstr("rank 1: collective #") &&
                             HasSubstr("all_reduce (sum) of Float [3]") && HasSubstr("rank 0: collective #") &&
                             HasSubstr("all_reduce (avg) of Float"));
  // Every rank stops at the check, together: no rank is left to abort the job.
  CHECK_THAT(job.output, !HasSubstr("MPI_ABORT"));
}

// A suspended job (SIGSTOP to every process, as `scontrol suspend` does) resumes with
// collectives that were in flight for longer than the timeout (3 s) in wall time.
TEST_CASE("A job suspended past the stall timeout carries on when resumed", "[dist][fault]") {
  // The probe's path and mode meet only in the job's command lines, not in this shell's
  // ($probe), and the pattern ([d]) does not match itself.
  const std::string job = "'[d]punet_fault_probe suspend'";
  const JobResult result = dpunet::test::run_command(
      "probe=" DPUNET_FAULT_PROBE "; log=$(mktemp); (timeout 90 " DPUNET_MPI_LAUNCHER
      " 2 \"$probe\" suspend 1 >$log 2>&1; echo exit=$? >>$log) & "
      "for i in $(seq 1 300); do grep -q 'holding back' $log && break; sleep 0.1; done; sleep 0.3; "
      "pkill -STOP -f " +
      job + " && echo suspended; sleep 5; pkill -CONT -f " + job + "; wait; cat $log; rm -f $log");
  INFO(result.output);
  // The job was really stopped: without it the test would pass with nothing suspended.
  CHECK(result.output.find("suspended") != std::string::npos);
  CHECK(result.output.find("holding back") != std::string::npos);
  CHECK(result.output.find("exit=0") != std::string::npos);
}

// srun with a --mpi plugin this MPI does not speak starts every task as rank 0 of 1;
// each would train alone. The launcher's own count gives it away.
TEST_CASE("Copies that MPI starts as singletons while the launcher says several stop with a message", "[dist][fault]") {
  for (const std::string variable : {"SLURM_STEP_NUM_TASKS", "PMI_SIZE"}) {
    const JobResult job = dpunet::test::run_command("env -u OMPI_COMM_WORLD_SIZE " + variable +
                                                    "=4 timeout 90 " DPUNET_FAULT_PROBE " ok 0 2>&1");
    INFO(job.output);
    CHECK(job.exit_code != 0);
    CHECK(job.exit_code != 124);
    CHECK(job.output.find("MPI started this process as rank 0 of 1, but " + variable + "=4") != std::string::npos);
  }
}

TEST_CASE("A stalled NCCL collective neither blocks the host nor hangs the job", "[gpu][fault]") {
  if (!dpunet::dist::nccl_available() || !torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU and a build with NCCL");
    return;
  }
  // One rank, started without mpirun (MPI's singleton start), as the other [gpu] tests.
  const JobResult job = dpunet::test::run_command("timeout 90 " DPUNET_FAULT_PROBE " nccl-stall 0 2>&1");
  INFO(job.output);
  REQUIRE(job.exit_code != 0);
  REQUIRE(job.exit_code != 124);
  // wait_on_stream() returned while the all-reduce could not even start.
  REQUIRE(job.output.find("queued without blocking") != std::string::npos);
  REQUIRE(job.output.find("NCCL all_reduce (Float, 1024 elements) has not completed after 1 s on rank 0 on") !=
          std::string::npos);
}
