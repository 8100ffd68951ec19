// Reliability through the launcher, 2 CPU ranks: a rank killed with SIGKILL ends the job
// promptly without damaging the last checkpoint, and SIGTERM to the launcher makes the
// ranks checkpoint and exit for requeue. Both runs then resume. And on one rank, a second
// Ctrl-C ends the run at once.
#include "support/catch.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "common/process_label.h"
#include "support/train_fixture.h"

using dpunet::test::TrainFixture;

namespace {

// Training through launcher/dpunet-launch, interrupted by `action` at step 5.
dpunet::test::CommandResult interrupt(const TrainFixture& f, const std::string& config, const std::string& action,
                                      const std::string& environment = "") {
  return f.interrupt(environment +
                         "DPUNET_BIN=" DPUNET_BINARY " OMP_NUM_THREADS=1 " DPUNET_SOURCE_DIR_SH
                         "/launcher/dpunet-launch --cpu -n 2 -- train " +
                         config,
                     "step 5/", action);
}

// slurm/train.sbatch run as SLURM job 7 on stand-ins: a launcher that ends with 75, as
// the ranks do on a stop (after `launcher`'s commands), and the SLURM commands given
// (name, then the script's body). The run directory is runs/t-cfg in the fixture's folder.
dpunet::test::CommandResult sbatch_on_stand_ins(const TrainFixture& f,
                                                const std::vector<std::pair<std::string, std::string>>& commands,
                                                const std::string& launcher = "") {
  std::filesystem::create_directories(f.dir() / "launcher");
  std::filesystem::create_directories(f.dir() / "bin");
  std::vector<std::pair<std::string, std::string>> files = {{"launcher/dpunet-launch", launcher + "exit 75\n"}};
  for (const auto& [name, body] : commands) files.emplace_back("bin/" + name, body);
  for (const auto& [file, body] : files) {
    dpunet::write_file_atomically(f.dir() / file, "#!/bin/bash\n" + body);
    std::filesystem::permissions(f.dir() / file, std::filesystem::perms::owner_all);
  }
  return dpunet::test::run_command("PATH=" + f.dir() / "bin" +
                                   ":$PATH SLURM_JOB_NAME=t SLURM_JOB_ID=7 DPUNET_ROOT=" + f.dir().path() +
                                   " bash " DPUNET_SOURCE_DIR_SH "/slurm/train.sbatch " + f.write_config() + " 2>&1");
}

int seconds_of(const std::string& output) {
  const auto at = output.find("seconds=");
  return at == std::string::npos ? -1 : std::stoi(output.substr(at + 8));
}

// SIGSTOPs training rank `rank` at step 5: alive but silent, as a rank stuck in a driver or
// on a dead file system is. It is killed after 120 s whatever happens, so that a hang ends
// the test.
dpunet::test::CommandResult stop_rank(const TrainFixture& f, const std::string& config, int rank,
                                      const std::string& environment = "") {
  return f.interrupt(environment +
                         " DPUNET_BIN=" DPUNET_BINARY " OMP_NUM_THREADS=1 " DPUNET_SOURCE_DIR_SH
                         "/launcher/dpunet-launch --cpu -n 2 -- train " +
                         config,
                     "step 5/",
                     "pid=" + dpunet::test::training_rank_pid(config, rank) +
                         "; kill -STOP $pid; (sleep 120; kill -KILL $pid) > /dev/null 2>&1 &");
}

}  // namespace

TEST_CASE("SIGKILL on one rank ends the job promptly and leaves a checkpoint to resume from", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config("train: {batch_size: 2, steps: 100000}\ndistributed: {timeout_s: 10}\n");
  const auto result =
      interrupt(f, config, "kill -9 $(pgrep -f " + dpunet::test::training_rank_pattern(config) + " | tail -1)");
  INFO(result.output << dpunet::read_file(f.log_path()));
  CHECK_THAT(result.output, HasSubstr("exit="));
  CHECK_THAT(result.output, !HasSubstr("exit=0 "));
  CHECK(seconds_of(result.output) >= 0);
  CHECK(seconds_of(result.output) <= 40);  // distributed.timeout_s, and time to end the job, on a busy machine
  // The killed rank says nothing, nor mpirun under --quiet: the launcher names the signal.
  CHECK_THAT(dpunet::read_file(f.log_path()),
             HasSubstr("was ended by signal 9, SIGKILL (often the kernel's out-of-memory"));
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  std::vector<std::string> damaged;
  const auto latest = store.latest_valid([&](const std::string& m) { damaged.push_back(m); });
  REQUIRE(latest);
  CHECK(damaged.empty());  // the newest checkpoint is intact
  const auto resumed = f.train(2, config + " --resume auto --stop-at-step 100");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, HasSubstr("resumed from " + *latest));
}

TEST_CASE("a launcher killed outright takes its ranks with it, with or without setpriv's parent-death signal",
          "[train][e2e]") {
  // The job runs in a session of its own: nothing else would end it. A setpriv without
  // --pdeathsig (util-linux before 2.33) leaves it to the launcher's watcher.
  // A signal the launcher does not trap (SIGUSR2) ends it too, and its exit then sends
  // the job the SIGTERM.
  struct Case {
    bool old_setpriv;
    std::string signal;
    int status;
  };
  for (const Case& c : {Case{false, "KILL", 137}, Case{true, "KILL", 137}, Case{true, "USR2", 140}}) {
    INFO((c.old_setpriv ? "a setpriv without --pdeathsig, SIG" : "this machine's setpriv, SIG") << c.signal);
    TrainFixture f;
    std::string path;
    if (c.old_setpriv) {
      std::filesystem::create_directories(f.dir() / "bin");
      dpunet::write_file_atomically(f.dir() / "bin/setpriv", "#!/bin/sh\necho 'Usage: setpriv [options]'\n");
      std::filesystem::permissions(f.dir() / "bin/setpriv", std::filesystem::perms::owner_all);
      path = "PATH=" + f.dir() / "bin" + ":$PATH ";
    }
    const std::string config =
        f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
    const std::string pattern = dpunet::test::training_rank_pattern(config);
    const auto result =
        interrupt(f, config,
                  "kill -" + c.signal + " $job; for i in $(seq 1 300); do pgrep -f " + pattern +
                      " > /dev/null || break; sleep 0.1; done; if pgrep -f " + pattern +
                      " > /dev/null; then echo ranks left; pkill -KILL -f " + pattern + "; else echo ranks gone; fi",
                  path);
    INFO(result.output << dpunet::read_file(f.log_path()));
    CHECK_THAT(result.output, HasSubstr("ranks gone") && HasSubstr("exit=" + std::to_string(c.status)));
  }
}

TEST_CASE("SIGTERM to the launcher checkpoints and exits for requeue", "[train][e2e]") {
  TrainFixture f;
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
  const auto result = interrupt(f, config, "kill -TERM $job");
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=75 "));
  CHECK_THAT(log, HasSubstr("stopped by a signal at step"));
  f.check_resumes_from_stop(config, log);
}

TEST_CASE("a stop request while the ranks start still ends the job for requeue", "[train][e2e]") {
  // mpirun drops a SIGUSR1 that comes before it has started the ranks, and a rank still
  // loading its libraries dies of one: said again until the job ends, and a job whose
  // ranks died so exits for requeue too. Sent the moment mpirun runs, whatever it hits.
  TrainFixture f;
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
  const auto result = dpunet::test::run_command(
      "DPUNET_BIN=" DPUNET_BINARY " OMP_NUM_THREADS=1 " DPUNET_SOURCE_DIR_SH
      "/launcher/dpunet-launch --cpu -n 2 -- train " +
      config + " > " + f.log_path() + " 2>&1 & job=$!\n" +
      "for i in $(seq 1 500); do pgrep -P $job -x mpirun > /dev/null && break; sleep 0.01; done\n" +
      "kill -TERM $job; wait $job; echo exit=$?");
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=75"));
  CHECK_THAT(log, HasSubstr("stopped by a signal at step") || HasSubstr("the ranks were stopped while starting") ||
                      HasSubstr("stopped by a signal before the job started"));
}

TEST_CASE("a stop that srun takes for a cancel before any rank started still ends for requeue", "[train][e2e]") {
  // srun still creating its step ends with 1 on a stop request: a stand-in that does so,
  // in a SLURM batch script's environment where srun speaks PMIx.
  TrainFixture f;
  std::filesystem::create_directories(f.dir() / "bin");
  dpunet::write_file_atomically(f.dir() / "bin/srun",
                                "#!/bin/bash\n"
                                "[ \"$1\" = --mpi=list ] && { echo 'MPI plugin types are...'; echo pmix; exit 0; }\n"
                                "trap 'exit 1' USR1\n"
                                "echo 'srun: Job step creation temporarily disabled, retrying'\n"
                                "sleep 30 & wait\n");
  std::filesystem::permissions(f.dir() / "bin/srun", std::filesystem::perms::owner_all);
  const auto result =
      f.interrupt("PATH=" + f.dir() / "bin" + ":$PATH SLURM_JOB_ID=7 SLURM_NTASKS=2 DPUNET_BIN=" + DPUNET_BINARY + " " +
                      DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch -- train " + f.write_config(),
                  "step creation temporarily disabled", "kill -TERM $job");
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=75"));
  CHECK_THAT(log, HasSubstr("stopped before any rank started (the launch ended with status 1)"));
}

TEST_CASE("a launcher outside its SLURM job's nodes passes a rank's failure on, not as a stop before the start",
          "[train][e2e]") {
  // salloc's shell on a login node: the ranks run on the job's nodes, where this
  // machine's start marker is never touched. A stand-in srun whose ranks fail (exit 1)
  // after the stop request; the job's nodes as scontrol lists them.
  for (const bool here : {false, true}) {
    INFO((here ? "the launcher's machine is one of the job's nodes" : "the job's nodes are elsewhere"));
    TrainFixture f;
    std::filesystem::create_directories(f.dir() / "bin");
    dpunet::write_file_atomically(f.dir() / "bin/srun",
                                  "#!/bin/bash\n"
                                  "[ \"$1\" = --mpi=list ] && { echo pmix; exit 0; }\n"
                                  "trap 'exit 1' USR1\n"
                                  "echo 'ranks running'\n"
                                  "sleep 30 & wait\n");
    const std::string nodes = here ? dpunet::host_name() + " node2" : "node1 node2";
    dpunet::write_file_atomically(f.dir() / "bin/scontrol", "#!/bin/bash\necho " + nodes + " | tr ' ' '\\n'\n");
    for (const char* name : {"bin/srun", "bin/scontrol"}) {
      std::filesystem::permissions(f.dir() / name, std::filesystem::perms::owner_all);
    }
    const auto result =
        f.interrupt("PATH=" + f.dir() / "bin" +
                        ":$PATH SLURM_JOB_ID=7 SLURM_NTASKS=2 SLURM_JOB_NODELIST=n[1-2] DPUNET_BIN=" + DPUNET_BINARY +
                        " " + DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch -- train " + f.write_config(),
                    "ranks running", "kill -TERM $job");
    const std::string log = dpunet::read_file(f.log_path());
    INFO(result.output << log);
    CHECK_THAT(result.output, HasSubstr(here ? "exit=75 " : "exit=1 "));
    const bool relabelled = log.find("stopped before any rank started") != std::string::npos;
    CHECK(relabelled == here);
  }
}

TEST_CASE("Ctrl-C at the launcher's terminal checkpoints and exits for requeue", "[train][e2e]") {
  TrainFixture f;
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
  // Ctrl-C signals the terminal's foreground process group: here the launcher's own, made
  // with setsid, with SIGINT's default action restored (a background job ignores it).
  const auto result =
      f.interrupt("setsid env --default-signal=INT DPUNET_BIN=" DPUNET_BINARY " OMP_NUM_THREADS=1 " DPUNET_SOURCE_DIR_SH
                  "/launcher/dpunet-launch --cpu -n 2 -- train " +
                      config,
                  "step 5/", "kill -INT -- -$job");
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=75 "));
  CHECK_THAT(log, HasSubstr("interrupted: the ranks stop after this step") && HasSubstr("stopped by a signal at step"));
  f.check_resumes_from_stop(config, log);
}

TEST_CASE("Ctrl-C that also ends the tee of the launcher's output still checkpoints", "[train][e2e]") {
  // `dpunet-launch ... 2>&1 | tee log`: Ctrl-C ends tee too, and the launcher's next
  // message meets a closed pipe; it must not end the launcher before the ranks are told.
  TrainFixture f;
  const std::string config =
      f.write_config("train: {batch_size: 2, steps: 100000}\n" + dpunet::test::kOnlyStopCheckpoints);
  const std::string tee_log = f.dir() / "tee.log";
  const auto result =
      f.interrupt("setsid env --default-signal=INT bash -c 'DPUNET_BIN=" DPUNET_BINARY
                  " OMP_NUM_THREADS=1 " DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch --cpu -n 2 -- train " +
                      config + " 2>&1 | tee " + tee_log + "; exit ${PIPESTATUS[0]}'",
                  "step 5/", "kill -INT -- -$job");
  INFO(result.output << dpunet::read_file(f.log_path()));
  CHECK_THAT(result.output, HasSubstr("exit=75 "));
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  CHECK(store.latest_valid([](const std::string&) {}));  // the stop's checkpoint
}

TEST_CASE("the launcher's dry run and errors", "[train][e2e]") {
  // As on a machine without GPUs, whatever this one has: the rank counts below are CPU
  // ranks', and an nvidia-smi that lists none leaves CUDA_VISIBLE_DEVICES lists uncapped.
  dpunet::test::TempDir tools;
  dpunet::write_file_atomically(tools / "nvidia-smi", "#!/bin/sh\nexit 0\n");
  std::filesystem::permissions(tools / "nvidia-smi", std::filesystem::perms::owner_all);
  const std::string hermetic = "PATH=" + tools.path() + ":$PATH ";
  const std::string launch =
      hermetic + "CUDA_VISIBLE_DEVICES= DPUNET_BIN=" DPUNET_BINARY " " DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch ";
  const auto dry = dpunet::test::run_command(launch + "-n 3 --dry-run -- train c.yaml 2>&1");
  CHECK(dry.exit_code == 0);
  CHECK_THAT(dry.output,
             HasSubstr("mpirun -np 3") && HasSubstr("/dpunet train c.yaml") && HasSubstr("OMP_NUM_THREADS="));
  // Called by a relative path with CDPATH exported, its build folder is still found: cd
  // through CDPATH prints the folder, which must not become part of the path.
  std::filesystem::create_directories(tools / "clone/launcher");
  std::filesystem::create_directories(tools / "clone/build/src");
  std::filesystem::copy_file(DPUNET_SOURCE_DIR "/launcher/dpunet-launch", tools / "clone/launcher/dpunet-launch");
  std::filesystem::permissions(tools / "clone/launcher/dpunet-launch", std::filesystem::perms::owner_all);
  dpunet::write_file_atomically(tools / "clone/build/src/dpunet", "#!/bin/sh\nexit 0\n");
  std::filesystem::permissions(tools / "clone/build/src/dpunet", std::filesystem::perms::owner_all);
  const auto cdpath = dpunet::test::run_command("cd " + tools / "clone" + " && " + hermetic +
                                                "CDPATH=.:/tmp CUDA_VISIBLE_DEVICES= launcher/dpunet-launch -n 2 "
                                                "--dry-run -- train c.yaml 2>&1");
  INFO(cdpath.output);
  CHECK(cdpath.exit_code == 0);
  CHECK_THAT(cdpath.output, HasSubstr("/clone/build/src/dpunet train c.yaml"));
  for (const std::string form : {"-n3", "-np 3", "-np3", "-np=3", "--ranks=3", "--ranks 3"}) {
    INFO(form);
    CHECK(dpunet::test::run_command(launch + form + " --dry-run -- train c.yaml 2>&1").output == dry.output);
  }
  // --hosts sends CUDA_VISIBLE_DEVICES to every host: each host's ranks need GPUs among its ids.
  const auto one_gpu_ids =
      dpunet::test::run_command("CUDA_VISIBLE_DEVICES=0 DPUNET_BIN=" DPUNET_BINARY " " DPUNET_SOURCE_DIR_SH
                                "/launcher/dpunet-launch --hosts n1:4,n2:4 --dry-run -- train c.yaml 2>&1");
  CHECK(one_gpu_ids.exit_code == 2);
  CHECK_THAT(one_gpu_ids.output,
             HasSubstr("--hosts gives a host 4 rank(s), but CUDA_VISIBLE_DEVICES=0 (set in this shell)"));
  const auto two_gpu_ids =
      dpunet::test::run_command(launch + "--gpus 0,1 --hosts n1:4,n2:4 --dry-run -- train c.yaml 2>&1");
  CHECK_THAT(two_gpu_ids.output, HasSubstr("CUDA_VISIBLE_DEVICES=0,1 (from --gpus)"));
  const auto four_gpu_ids = dpunet::test::run_command(launch +
                                                      "--gpus=0,1,2,3 --hosts=n1:4,n2:4 --dry-run -- "
                                                      "train c.yaml 2>&1");
  CHECK(four_gpu_ids.exit_code == 0);
  CHECK_THAT(four_gpu_ids.output, HasSubstr("mpirun -np 8") && HasSubstr("-x CUDA_VISIBLE_DEVICES"));
  const auto gpus = dpunet::test::run_command(launch + "--gpus 0 -n 2 --dry-run -- train c.yaml 2>&1");
  CHECK(gpus.exit_code == 2);
  CHECK_THAT(gpus.output, HasSubstr("2 ranks but 1 GPU"));
  const auto cpu = dpunet::test::run_command(launch + "--cpu --dry-run -- train c.yaml 2>&1");
  CHECK(cpu.exit_code == 0);
  CHECK_THAT(cpu.output, HasSubstr("CUDA_VISIBLE_DEVICES= ") && HasSubstr("mpirun -np 2"));
  const auto empty_gpu = dpunet::test::run_command(launch + "--gpus 0,,1 --dry-run -- train c.yaml 2>&1");
  CHECK(empty_gpu.exit_code == 2);
  CHECK_THAT(empty_gpu.output, HasSubstr("--gpus 0,,1: an empty entry"));
  // An empty value (an unset shell variable) is not taken for the option's absence.
  for (const std::string& empty : {"--hosts=", "--hosts ''", "-n ''", "--ranks="}) {
    const auto given = dpunet::test::run_command(launch + empty + " --dry-run -- train c.yaml 2>&1");
    INFO(empty << ": " << given.output);
    CHECK(given.exit_code == 2);
    CHECK_THAT(given.output, HasSubstr("needs a"));
  }
  const auto threads =
      dpunet::test::run_command("OMP_NUM_THREADS=4,2 " + launch + "--cpu --dry-run -- train c.yaml 2>&1");
  CHECK(threads.exit_code == 2);
  CHECK_THAT(threads.output, HasSubstr("OMP_NUM_THREADS=4,2: the launcher needs one whole number"));
  const auto contradiction = dpunet::test::run_command(launch + "--cpu --gpus 0 -- train c.yaml 2>&1");
  CHECK(contradiction.exit_code != 0);
  CHECK_THAT(contradiction.output, HasSubstr("contradict"));
  const auto hosts =
      dpunet::test::run_command("env -u OMP_NUM_THREADS " + launch + "--hosts a:3,b:2 --dry-run -- train c.yaml 2>&1");
  CHECK(hosts.exit_code == 0);
  CHECK_THAT(hosts.output, HasSubstr("mpirun -np 5") && HasSubstr("--host a:3"));
  // This machine's cores say nothing of the hosts': each rank takes its share of its own
  // host's, and mpirun pins none.
  CHECK_THAT(hosts.output, HasSubstr(" --bind-to none ") && !HasSubstr("OMP_NUM_THREADS") && !HasSubstr("PE="));
  const auto hosts_threads =
      dpunet::test::run_command("OMP_NUM_THREADS=3 " + launch + "--hosts a:3,b:2 --dry-run -- train c.yaml 2>&1");
  CHECK_THAT(hosts_threads.output, HasSubstr("OMP_NUM_THREADS=3 ") && HasSubstr(" -x OMP_NUM_THREADS "));
  const auto too_many = dpunet::test::run_command(launch + "-n 6 --hosts a:3,b:2 --dry-run -- train c.yaml 2>&1");
  CHECK(too_many.exit_code == 2);
  CHECK_THAT(too_many.output, HasSubstr("-n 6 but --hosts a:3,b:2 has 5 slot(s)"));
  for (const std::string& bad : {"a,b", "'a b:2'"}) {
    const auto bad_hosts = dpunet::test::run_command(launch + "--hosts " + bad + " -- train c.yaml 2>&1");
    INFO(bad_hosts.output);
    CHECK(bad_hosts.exit_code == 2);
    CHECK_THAT(bad_hosts.output, HasSubstr("--hosts must be HOST:SLOTS"));
  }
  // The `--` before the command is no option's value.
  for (const std::string& option : {"--gpus", "--hosts", "-n"}) {
    const auto lacking = dpunet::test::run_command(launch + option + " -- train c.yaml 2>&1");
    INFO(lacking.output);
    CHECK(lacking.exit_code == 2);
    CHECK_THAT(lacking.output, HasSubstr(option + " needs a"));
  }
  // CUDA reads CUDA_VISIBLE_DEVICES up to its first entry that is no GPU: -1 hides them
  // all; so does an entry given twice.
  for (const std::string& hidden : {"-1", "NoDevFiles", "0,0"}) {
    const auto none =
        dpunet::test::run_command(hermetic + "DPUNET_BIN=" DPUNET_BINARY " CUDA_VISIBLE_DEVICES=" + hidden +
                                  " " DPUNET_SOURCE_DIR_SH
                                  "/launcher/dpunet-launch --dry-run -- "
                                  "train c.yaml 2>&1");
    INFO(none.output);
    CHECK(none.exit_code == 0);
    CHECK_THAT(none.output, HasSubstr("mpirun -np 2 "));  // CPU ranks
  }
  const auto two_of_three = dpunet::test::run_command(
      hermetic + "DPUNET_BIN=" DPUNET_BINARY " CUDA_VISIBLE_DEVICES=0,1,-1,2 " DPUNET_SOURCE_DIR_SH
                 "/launcher/dpunet-launch -n 3 --dry-run -- train c.yaml 2>&1");
  CHECK(two_of_three.exit_code == 2);
  CHECK_THAT(two_of_three.output, HasSubstr("3 ranks but 2 GPU(s) visible"));
  // An index's leading digits count; UUIDs, once the list starts with one, until an index.
  for (const std::string& one : {"'0 1'", "1a", "GPU-8a1b,1"}) {
    const auto counted = dpunet::test::run_command(
        hermetic + "DPUNET_BIN=" DPUNET_BINARY " CUDA_VISIBLE_DEVICES=" + one +
        " " DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch -n 2 --dry-run -- train c.yaml 2>&1");
    INFO(one << ": " << counted.output);
    CHECK_THAT(counted.output, HasSubstr("2 ranks but 1 GPU(s) visible"));
  }
  // GPUs hidden from every host: the ranks there are CPU ranks, as with an empty list.
  const auto hidden_hosts =
      dpunet::test::run_command(hermetic + "DPUNET_BIN=" DPUNET_BINARY " CUDA_VISIBLE_DEVICES=-1 " DPUNET_SOURCE_DIR_SH
                                           "/launcher/dpunet-launch --hosts a:2,b:2 --dry-run -- train c.yaml 2>&1");
  INFO(hidden_hosts.output);
  CHECK(hidden_hosts.exit_code == 0);
  CHECK_THAT(hidden_hosts.output, HasSubstr("mpirun -np 4 "));
  // Ids past the machine's GPUs (nvidia-smi lists two here) end the list, as for CUDA:
  // said for an inherited CUDA_VISIBLE_DEVICES, refused for --gpus.
  {
    dpunet::test::TempDir two_gpus;
    dpunet::write_file_atomically(two_gpus / "nvidia-smi",
                                  "#!/bin/sh\necho 'GPU 0: A (UUID: GPU-a)'\necho 'GPU 1: A (UUID: GPU-b)'\n");
    std::filesystem::permissions(two_gpus / "nvidia-smi", std::filesystem::perms::owner_all);
    const std::string on_two = "PATH=" + two_gpus.path() + ":$PATH DPUNET_BIN=" DPUNET_BINARY " ";
    const auto stale = dpunet::test::run_command(on_two + "CUDA_VISIBLE_DEVICES=0,1,2,3 " DPUNET_SOURCE_DIR_SH
                                                          "/launcher/dpunet-launch --dry-run -- train c.yaml 2>&1");
    INFO(stale.output);
    CHECK(stale.exit_code == 0);
    CHECK_THAT(stale.output,
               HasSubstr("CUDA_VISIBLE_DEVICES=0,1,2,3 names GPUs this machine lacks") && HasSubstr("mpirun -np 2 "));
    const auto past = dpunet::test::run_command(on_two + DPUNET_SOURCE_DIR_SH
                                                "/launcher/dpunet-launch --gpus 1,2 --dry-run -- train c.yaml 2>&1");
    CHECK(past.exit_code == 2);
    CHECK_THAT(past.output, HasSubstr("--gpus 1,2: this machine has 2 GPU(s)"));
    const auto all =
        dpunet::test::run_command("env -u CUDA_VISIBLE_DEVICES " + on_two +
                                  DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch --dry-run -- train c.yaml 2>&1");
    CHECK_THAT(all.output, HasSubstr("mpirun -np 2 ") && !HasSubstr("lacks"));
  }
  // A cgroup CPU quota (docker --cpus 1) caps the threads, as cgroup v2 and v1 write it;
  // none ("max", -1) leaves the cores.
  {
    dpunet::test::TempDir cgroup;
    std::filesystem::create_directories(cgroup / "v2");
    std::filesystem::create_directories(cgroup / "v1/cpu");
    dpunet::write_file_atomically(cgroup / "v2/cpu.max", "100000 100000\n");
    dpunet::write_file_atomically(cgroup / "v1/cpu/cpu.cfs_quota_us", "50000\n");
    dpunet::write_file_atomically(cgroup / "v1/cpu/cpu.cfs_period_us", "100000\n");
    for (const char* version : {"v2", "v1"}) {
      const auto capped = dpunet::test::run_command("env -u OMP_NUM_THREADS DPUNET_CGROUP_ROOT=" + cgroup / version +
                                                    " " + launch + "--cpu -n 1 --dry-run -- train c.yaml 2>&1");
      INFO(version << ": " << capped.output);
      CHECK(capped.exit_code == 0);
      CHECK_THAT(capped.output, HasSubstr("OMP_NUM_THREADS=1 "));
    }
    dpunet::write_file_atomically(cgroup / "v2/cpu.max", "max 100000\n");
    // Unset, as for the capped runs: a thread count in the environment is the launcher's
    // to honour, which would make the two alike whatever the quota did.
    const auto unlimited = dpunet::test::run_command("env -u OMP_NUM_THREADS DPUNET_CGROUP_ROOT=" + cgroup / "v2" +
                                                     " " + launch + "--cpu -n 1 --dry-run -- train c.yaml 2>&1");
    // No cgroup files at all: the cores alone (this machine's own cgroup may hold a quota).
    const auto plain = dpunet::test::run_command("env -u OMP_NUM_THREADS DPUNET_CGROUP_ROOT=" + cgroup.path() + " " +
                                                 launch + "--cpu -n 1 --dry-run -- train c.yaml 2>&1");
    INFO(unlimited.output);
    CHECK_THAT(unlimited.output, HasSubstr("OMP_NUM_THREADS="));
    CHECK(unlimited.output == plain.output);
  }
  const auto no_gpu = dpunet::test::run_command(launch + "--gpus -1 --dry-run -- train c.yaml 2>&1");
  CHECK(no_gpu.exit_code == 2);
  CHECK_THAT(no_gpu.output, HasSubstr("--gpus -1 names no GPU"));
  const auto missing = dpunet::test::run_command("DPUNET_BIN=/nonexistent " DPUNET_SOURCE_DIR_SH
                                                 "/launcher/dpunet-launch -- train c.yaml 2>&1");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.output, HasSubstr("no dpunet binary at /nonexistent"));
  // More GPUs than cores (512 here): mpirun cannot bind that many ranks, so none are bound.
  const auto many_gpus = dpunet::test::run_command(
      hermetic + "DPUNET_BIN=" DPUNET_BINARY " CUDA_VISIBLE_DEVICES=$(seq -s, 0 511) " DPUNET_SOURCE_DIR_SH
                 "/launcher/dpunet-launch --dry-run -- train c.yaml 2>&1");
  CHECK(many_gpus.exit_code == 0);
  CHECK_THAT(many_gpus.output, HasSubstr("mpirun -np 512") && HasSubstr("--oversubscribe --bind-to none"));
  const auto help = dpunet::test::run_command(launch + "--help 2>&1");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.output, HasSubstr("Environment: DPUNET_BIN") && !HasSubstr("pipefail"));
  // The batch script checks its arguments before it starts anything.
  const std::string sbatch = "cd " DPUNET_SOURCE_DIR_SH " && SLURM_JOB_NAME=t SLURM_JOB_ID=1 bash slurm/train.sbatch ";
  const auto set_first = dpunet::test::run_command(sbatch + "--set train.steps=5 2>&1");
  CHECK(set_first.exit_code == 2);
  CHECK_THAT(set_first.output, HasSubstr("the first argument is the config file, got '--set'") &&
                                   !HasSubstr("basename"));  // said first, and alone
  const auto no_config = dpunet::test::run_command(sbatch + "nonexistent.yaml 2>&1");
  CHECK(no_config.exit_code == 2);
  CHECK_THAT(no_config.output, HasSubstr("config file 'nonexistent.yaml' not found"));
  const auto run_dir = dpunet::test::run_command(sbatch + "configs/quickstart.yaml --set run.dir=/tmp/x 2>&1");
  CHECK(run_dir.exit_code == 2);
  CHECK_THAT(run_dir.output, HasSubstr("DPUNET_RUN_DIR"));
  const auto restarts = dpunet::test::run_command("cd " DPUNET_SOURCE_DIR_SH
                                                  " && SLURM_JOB_ID=1 DPUNET_MAX_RESTARTS=abc bash slurm/train.sbatch "
                                                  "configs/quickstart.yaml 2>&1");
  CHECK(restarts.exit_code == 2);
  CHECK_THAT(restarts.output, HasSubstr("DPUNET_MAX_RESTARTS=abc: give a whole number"));
  const auto outside = dpunet::test::run_command(
      "cd " DPUNET_SOURCE_DIR_SH " && env -u SLURM_JOB_ID bash slurm/train.sbatch configs/quickstart.yaml 2>&1");
  CHECK(outside.exit_code == 2);
  CHECK_THAT(outside.output, HasSubstr("not inside a SLURM job"));
  // Submitted from another folder: where to submit from, not a config that is not there.
  const auto elsewhere = dpunet::test::run_command(
      "cd /tmp && env -u SLURM_SUBMIT_DIR -u DPUNET_ROOT SLURM_JOB_NAME=t SLURM_JOB_ID=1 bash " DPUNET_SOURCE_DIR_SH
      "/slurm/train.sbatch configs/quickstart.yaml 2>&1");
  CHECK(elsewhere.exit_code == 2);
  CHECK_THAT(elsewhere.output, HasSubstr("submit from the repository root, or set DPUNET_ROOT"));
  const auto no_mpirun = dpunet::test::run_command("MPIRUN=/nonexistent/mpirun " + launch + "-- train c.yaml 2>&1");
  CHECK(no_mpirun.exit_code == 2);
  CHECK_THAT(no_mpirun.output, HasSubstr("mpirun not found"));
  // Open MPI 4 under another name says "(OpenRTE)"; full host names are kept.
  const auto mpiexec = dpunet::test::run_command("MPIRUN=mpiexec HDF5_USE_FILE_LOCKING=FALSE " + launch +
                                                 "--hosts a.example:2 --dry-run -- train c.yaml 2>&1");
  CHECK(mpiexec.exit_code == 0);
  CHECK_THAT(mpiexec.output,
             HasSubstr("mpiexec -np 2") && HasSubstr("keep_fqdn_hostnames 1") && HasSubstr("-x HDF5_USE_FILE_LOCKING"));
  // Another program is not taken for mpirun (its flags would be Open MPI's).
  const auto other = dpunet::test::run_command("MPIRUN=/bin/echo " + launch + "-- train c.yaml 2>&1");
  CHECK(other.exit_code == 2);
  CHECK_THAT(other.output, HasSubstr("is not Open MPI's mpirun") && HasSubstr("mpiexec -n N"));
  // Inside SLURM (srun or mpirun, whichever this machine has): an interactive shell is a
  // job step whose CPUs the ranks' step must overlap, unless it is smaller than its job
  // (scontrol here says the job's task count); a second task of a step is refused; an
  // allocation without a task count needs -n where the shell may not be on its one node.
  dpunet::test::TempDir bin;
  const auto job_of = [&](int tasks) {
    dpunet::write_file_atomically(bin / "scontrol", "#!/bin/sh\necho 'JobId=7 NumNodes=2 NumCPUs=8 NumTasks=" +
                                                        std::to_string(tasks) + " CPUs/Task=1'\n");
    std::filesystem::permissions(bin / "scontrol", std::filesystem::perms::owner_all);
    return "PATH=" + bin.path() + ":$PATH ";
  };
  const std::string slurm = "SLURM_JOB_ID=7 SLURM_NNODES=2 ";
  const auto step = dpunet::test::run_command(job_of(2) + slurm + "SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_PROCID=0 " +
                                              launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(step.exit_code == 0);
  CHECK_THAT(step.output, HasSubstr("SLURM_OVERLAP=1"));
  const auto small_step = dpunet::test::run_command(job_of(8) + slurm + "SLURM_NTASKS=1 SLURM_STEP_ID=0 " + launch +
                                                    "--dry-run -- train c.yaml 2>&1");
  CHECK(small_step.exit_code == 2);
  CHECK_THAT(small_step.output, HasSubstr("SLURM step 7.0 with 1 task(s) of the job's 8"));
  const auto batch = dpunet::test::run_command(slurm + "SLURM_NTASKS=2 " + launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(batch.exit_code == 0);
  CHECK_THAT(batch.output, !HasSubstr("SLURM_OVERLAP"));
  // GPUs are SLURM's to hand out to its tasks.
  const auto gpus_listed =
      dpunet::test::run_command(slurm + "SLURM_NTASKS=2 " + launch + "--gpus 0,1 --dry-run -- train c.yaml 2>&1");
  CHECK(gpus_listed.exit_code == 2);
  CHECK_THAT(gpus_listed.output, HasSubstr("--gpus 0,1 inside a SLURM allocation") && HasSubstr("--gpus-per-task"));
  // One task on a node that shows four GPUs (srun --gpus=4 --pty bash): three sit idle, said.
  const std::string four_gpus = hermetic + "CUDA_VISIBLE_DEVICES=0,1,2,3 DPUNET_BIN=" DPUNET_BINARY
                                           " " DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch ";
  const auto one_task = dpunet::test::run_command("SLURM_JOB_ID=7 SLURM_NNODES=1 SLURM_NTASKS=1 " + four_gpus +
                                                  "--dry-run -- train c.yaml 2>&1");
  INFO(one_task.output);
  CHECK(one_task.exit_code == 0);
  CHECK_THAT(one_task.output, HasSubstr("the allocation has 1 task(s), the ranks, but 4 GPUs are visible here: 3 "
                                        "will sit idle (allocate one task per GPU: --ntasks-per-node=4)"));
  const auto four_tasks = dpunet::test::run_command("SLURM_JOB_ID=7 SLURM_NNODES=1 SLURM_NTASKS=4 " + four_gpus +
                                                    "--dry-run -- train c.yaml 2>&1");
  CHECK_THAT(four_tasks.output, !HasSubstr("sit idle"));
  // An srun without PMIx: mpirun starts its daemons with a plain srun, which must not
  // take a job's --export=NONE (SLURM_EXPORT_ENV) for them.
  dpunet::write_file_atomically(bin / "srun", "#!/bin/sh\necho 'MPI plugin types are...'; echo none\n");
  std::filesystem::permissions(bin / "srun", std::filesystem::perms::owner_all);
  const auto no_pmix = dpunet::test::run_command("PATH=" + bin.path() + ":$PATH SLURM_EXPORT_ENV=NONE " + slurm +
                                                 "SLURM_NTASKS=2 " + launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(no_pmix.exit_code == 0);
  CHECK_THAT(no_pmix.output, HasSubstr("SLURM_EXPORT_ENV=ALL") && HasSubstr("mpirun") && !HasSubstr("--mpi=pmix"));
  const auto second = dpunet::test::run_command(slurm + "SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_PROCID=1 " + launch +
                                                "--dry-run -- train c.yaml 2>&1");
  CHECK(second.exit_code == 2);
  CHECK_THAT(second.output, HasSubstr("started as task 1 of SLURM step 7.0") && HasSubstr("once per job"));
  const auto no_tasks = dpunet::test::run_command(slurm + launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(no_tasks.exit_code == 2);
  CHECK_THAT(no_tasks.output,
             HasSubstr("SLURM allocation 7 names no task count: give -n N (ranks over its 2 node(s))"));
  const auto counted = dpunet::test::run_command(slurm + launch + "-n 3 --dry-run -- train c.yaml 2>&1");
  CHECK(counted.exit_code == 0);
  CHECK_THAT(counted.output, (HasSubstr("srun --mpi=pmix --export=ALL -n 3") || HasSubstr("mpirun -np 3")) &&
                                 HasSubstr("dpunet train c.yaml"));
  // Allocated by --cpus-per-gpu (no CPUs per task): the node's CPUs shared by its tasks.
  const auto per_gpu = dpunet::test::run_command("env -u OMP_NUM_THREADS -u SLURM_CPUS_PER_TASK " + slurm +
                                                 "SLURM_NTASKS=8 'SLURM_TASKS_PER_NODE=4(x2)' SLURM_CPUS_ON_NODE=32 " +
                                                 launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(per_gpu.exit_code == 0);
  CHECK_THAT(per_gpu.output, HasSubstr("OMP_NUM_THREADS=8 "));
  const auto login_node =
      dpunet::test::run_command("SLURM_JOB_ID=7 SLURM_NNODES=1 " + launch + "--dry-run -- train c.yaml 2>&1");
  CHECK(login_node.exit_code == 2);
  CHECK_THAT(login_node.output, HasSubstr("names no task count"));
  // One node's batch script without a task count runs there: launched like any machine.
  const auto one_node = dpunet::test::run_command("SLURM_JOB_ID=7 SLURM_JOB_NUM_NODES=1 ENVIRONMENT=BATCH " + launch +
                                                  "--dry-run -- train c.yaml 2>&1");
  CHECK(one_node.exit_code == 0);
  CHECK_THAT(one_node.output, HasSubstr("mpirun -np 2") && !HasSubstr("srun"));
}

// A launch that fails before any rank starts would be silent under --quiet (Open MPI 4).
TEST_CASE("the launcher explains a launch that started no rank", "[train][e2e]") {
  // As on a machine without GPUs, whatever this one has: the rank counts below are CPU
  // ranks', and an nvidia-smi that lists none leaves CUDA_VISIBLE_DEVICES lists uncapped.
  dpunet::test::TempDir tools;
  dpunet::write_file_atomically(tools / "nvidia-smi", "#!/bin/sh\nexit 0\n");
  std::filesystem::permissions(tools / "nvidia-smi", std::filesystem::perms::owner_all);
  const std::string hermetic = "PATH=" + tools.path() + ":$PATH ";
  const std::string launch =
      hermetic + "CUDA_VISIBLE_DEVICES= DPUNET_BIN=" DPUNET_BINARY " " DPUNET_SOURCE_DIR_SH "/launcher/dpunet-launch ";
  const auto version = dpunet::test::run_command("mpirun --version 2>&1");
  if (version.output.find("Open MPI) 4.") == std::string::npos) {
    DPUNET_SKIP("needs Open MPI 4's mpirun (--quiet)");
    return;
  }
  const auto broken = dpunet::test::run_command("OMPI_MCA_plm=nonexistent " + launch + "--cpu -n 2 -- version 2>&1");
  INFO(broken.output);
  CHECK(broken.exit_code != 0);
  // The command to rerun carries the environment the launcher gave the job.
  CHECK_THAT(broken.output, HasSubstr("before any rank started on this machine") &&
                                HasSubstr("to see it, run: env OMP_NUM_THREADS=") &&
                                HasSubstr(" CUDA_VISIBLE_DEVICES= mpirun"));
  // Ranks only on other machines: whether one started cannot be seen here, so it says so.
  const auto remote = dpunet::test::run_command("OMPI_MCA_plm=nonexistent " + launch +
                                                "--cpu --hosts nohost.invalid:2 -- version 2>&1");
  INFO(remote.output);
  CHECK(remote.exit_code != 0);
  CHECK_THAT(remote.output, HasSubstr("if no rank said why, --quiet hid mpirun's reason and the host") &&
                                HasSubstr("to see them, run: ") && !HasSubstr("before any rank started"));
  // With --hosts, ranks that started here say nothing of those elsewhere: said alike.
  const auto hosts_error =
      dpunet::test::run_command(launch + "--cpu --hosts localhost:2 -- train /nonexistent.yaml 2>&1");
  INFO(hosts_error.output);
  CHECK(hosts_error.exit_code == 2);
  CHECK_THAT(hosts_error.output, HasSubstr("/nonexistent.yaml") &&
                                     HasSubstr("if no rank said why, --quiet hid mpirun's reason and the host"));
  // A rank's own error is not taken for a failed launch.
  const auto rank_error = dpunet::test::run_command(launch + "--cpu -n 2 -- train /nonexistent.yaml 2>&1");
  CHECK(rank_error.exit_code == 2);
  CHECK_THAT(rank_error.output, !HasSubstr("before any rank started"));
}

// The give-up counter of train.sbatch: starts that saved no new checkpoint, in a row.
TEST_CASE("train.sbatch stops after too many starts without progress", "[train][e2e]") {
  TrainFixture f;
  const std::string run_dir = f.dir() / "sbatch-run";
  const std::string sbatch = "cd " DPUNET_SOURCE_DIR_SH " && mkdir -p " + run_dir + " && echo 3 >" + run_dir +
                             "/slurm-starts-without-progress && SLURM_JOB_NAME=t SLURM_JOB_ID=1 "
                             "DPUNET_MAX_RESTARTS=2 DPUNET_RUN_DIR=" +
                             run_dir + " bash slurm/train.sbatch configs/quickstart.yaml 2>&1";
  const auto result = dpunet::test::run_command(sbatch);
  INFO(result.output);
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.output, HasSubstr("3 starts in a row saved no new checkpoint (DPUNET_MAX_RESTARTS=2)"));
  // A one-node job may name no task count (the launcher counts the node's GPUs).
  CHECK_THAT(result.output, HasSubstr("start 0: (no task count) ranks"));
}

TEST_CASE("train.sbatch says a stop that came before any checkpoint as it was, and requeues", "[train][e2e]") {
  // A launcher stopped while its job was starting ends with 75 too, with no checkpoint:
  // here a stand-in launcher that does just that, and an scontrol that says RUNNING.
  TrainFixture f;
  const auto result = sbatch_on_stand_ins(f, {{"scontrol", "[ \"$1\" = show ] && echo JobState=RUNNING\nexit 0\n"}});
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK_THAT(result.output, HasSubstr("stopped before a new checkpoint (the stop came while the job was starting); "
                                      "requeueing job 7") &&
                                !HasSubstr("checkpointed"));
}

TEST_CASE("train.sbatch counts no progress for a start that only wrote its resumed checkpoint again", "[train][e2e]") {
  // A time limit within the stop warning stops every start at once: the trainer writes
  // the checkpoint it resumed from again, and stops. Counted as progress, that requeued
  // the job for ever; a checkpoint of another step is progress.
  for (const std::string written : {"step-00000005.ckpt", "step-00000006.ckpt"}) {
    INFO(written);
    TrainFixture f;
    const std::string checkpoints = f.dir() / "runs/t-cfg/checkpoints";
    std::filesystem::create_directories(checkpoints);
    dpunet::write_file_atomically(checkpoints + "/step-00000005.ckpt", "step 5");
    const auto result = sbatch_on_stand_ins(f, {{"scontrol", "[ \"$1\" = show ] && echo JobState=RUNNING\nexit 0\n"}},
                                            "sleep 0.05; echo again > " + checkpoints + "/" + written + "\n");
    INFO(result.output);
    CHECK(result.exit_code == 0);
    const bool progress = written != "step-00000005.ckpt";
    CHECK_THAT(result.output, HasSubstr(progress ? "checkpointed; requeueing job 7"
                                                 : "stopped before a new checkpoint (the stop came while the job was "
                                                   "starting); requeueing job 7"));
    CHECK(dpunet::read_file(f.dir() / "runs/t-cfg/slurm-starts-without-progress") == (progress ? "0\n" : "1\n"));
  }
}

TEST_CASE("train.sbatch requeues a job its time limit ended, not one cancelled just before it", "[train][e2e]") {
  // A 1-minute job: every moment of it is within the last 90 s before its limit. The
  // stand-in launcher stops with 75 as the ranks do on SIGTERM; scontrol says how the job
  // is ending, as SLURM does: by its limit (Reason=TimeLimit), or by a user's scancel.
  TrainFixture f;
  for (const std::string reason : {"TimeLimit", "None"}) {
    INFO(reason);
    const auto result = sbatch_on_stand_ins(
        f, {{"squeue", "echo 1:00\n"},
            {"scontrol", "[ \"$1\" = show ] && echo JobState=COMPLETING Reason=" + reason + "\nexit 0\n"}});
    INFO(result.output);
    if (reason == "TimeLimit") {
      CHECK(result.exit_code == 0);
      CHECK_THAT(result.output, HasSubstr("requeueing job 7"));
    } else {
      CHECK(result.exit_code == 75);
      CHECK_THAT(result.output, HasSubstr("job 7 is ending (JobState=COMPLETING: cancelled or preempted), so this "
                                          "script does not requeue it") &&
                                    !HasSubstr("requeueing"));
    }
  }
}

TEST_CASE("train.sbatch names a run directory it cannot create and a requeue setting it does not know",
          "[train][e2e]") {
  TrainFixture f;
  const std::string job = "cd " DPUNET_SOURCE_DIR_SH " && SLURM_JOB_NAME=t SLURM_JOB_ID=1 SLURM_NTASKS=2 ";
  dpunet::write_file_atomically(f.dir() / "file", "");
  const auto uncreatable = dpunet::test::run_command(job + "DPUNET_RUN_DIR=" + f.dir() / "file/run" +
                                                     " bash slurm/train.sbatch " + f.write_config() + " 2>&1");
  CHECK(uncreatable.exit_code == 2);
  CHECK_THAT(uncreatable.output, HasSubstr("cannot create the run directory " + f.dir() / "file/run") &&
                                     !HasSubstr("going on without the check"));
  const auto unknown = dpunet::test::run_command(job + "DPUNET_REQUEUE_ON_FAILURE=maybe bash slurm/train.sbatch " +
                                                 f.write_config() + " 2>&1");
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.output, HasSubstr("DPUNET_REQUEUE_ON_FAILURE=maybe: give 1 or 0"));
}

TEST_CASE("train.sbatch refuses a run directory started from another config, or one another run holds",
          "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();  // cfg.yaml: the run directory is runs/t-cfg
  const std::string run_dir = f.dir() / "runs/t-cfg";
  std::filesystem::create_directories(run_dir);
  const std::string job = "cd " DPUNET_SOURCE_DIR_SH " && SLURM_JOB_NAME=t SLURM_JOB_ID=1 SLURM_NTASKS=2 ";
  SECTION("another config of the same file name") {
    // DPUNET_ROOT is the fixture's folder (the run directory goes under it), with the launcher.
    std::filesystem::create_directory_symlink(DPUNET_SOURCE_DIR "/launcher", f.dir() / "launcher");
    dpunet::write_file_atomically(run_dir + "/.slurm-config", "/sweeps/lr3/cfg.yaml\n");
    dpunet::write_file_atomically(run_dir + "/DONE", "8\n");  // refused all the same, not "finished"
    const auto result = dpunet::test::run_command(job + "DPUNET_ROOT=" + f.dir().path() + " bash " +
                                                  DPUNET_SOURCE_DIR_SH "/slurm/train.sbatch " + config + " 2>&1");
    INFO(result.output);
    CHECK(result.exit_code == 2);
    CHECK_THAT(result.output,
               HasSubstr(run_dir + " was started from /sweeps/lr3/cfg.yaml, not " + config) && HasSubstr("--job-name"));
  }
  SECTION("a run training there") {
    // The holder writes its name as the trainer does, and keeps the lock while it sleeps.
    const std::string hold = "(printf 'pid 1 on elsewhere\\n' > " + run_dir + "/.lock; exec flock -o " + run_dir +
                             "/.lock sleep 60) & holder=$!; until ! flock -n " + run_dir +
                             "/.lock true; do sleep 0.05; done; ";
    const auto result = dpunet::test::run_command(hold + job + "DPUNET_LOCK_WAIT_S=1 DPUNET_RUN_DIR=" + run_dir +
                                                  " bash slurm/train.sbatch " + config +
                                                  " 2>&1; status=$?; pkill -P $holder; echo status=$status");
    INFO(result.output);
    CHECK_THAT(result.output,
               HasSubstr("status=2") && HasSubstr(run_dir + " is in use by another run (pid 1 on elsewhere)"));
    CHECK_FALSE(std::filesystem::exists(run_dir + "/.slurm-start"));   // no start counted
    CHECK_FALSE(std::filesystem::exists(run_dir + "/.slurm-config"));  // nor its config taken for the run's
  }
  SECTION("a --resume of its own, or no launcher where it looks") {
    const auto resume = dpunet::test::run_command(job + "DPUNET_RUN_DIR=" + run_dir + " bash slurm/train.sbatch " +
                                                  config + " --resume auto 2>&1");
    CHECK(resume.exit_code == 2);
    CHECK_THAT(resume.output, HasSubstr("the script resumes by itself"));
    const auto elsewhere = dpunet::test::run_command(job + "DPUNET_ROOT=" + f.dir().path() +
                                                     " bash slurm/train.sbatch " + config + " 2>&1");
    CHECK(elsewhere.exit_code == 2);
    CHECK_THAT(elsewhere.output, HasSubstr("no launcher/dpunet-launch in " + f.dir().path()));
  }
}

TEST_CASE("errors every rank meets while starting end the job with one message, without an MPI abort", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  const auto quiet = [](const std::string& output) {
    return !HasSubstr("MPI_ABORT").match(output) && !HasSubstr("ORTE_ERROR_LOG").match(output) &&
           !HasSubstr("(rank 1 on").match(output);
  };
  const auto missing = f.train(2, config + " --set data.train=" + f.dir() / "missing/train-*.h5");
  INFO(missing.output);
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, HasSubstr("data.train: " + f.dir() / "missing/train-*.h5"));
  CHECK(quiet(missing.output));
  // The fixture's shards hold 3 classes.
  const auto classes = f.train(2, config + " --set model.n_classes=2");
  INFO(classes.output);
  CHECK(classes.exit_code != 0);
  CHECK_THAT(classes.output, HasSubstr("data.train") && HasSubstr("but model.n_classes is 2"));
  CHECK(quiet(classes.output));
  // 24 samples, dropped short of a global batch of 2 x 16; and a validation shard that
  // trains too: found by every rank alike, after the data were opened.
  const auto small = f.train(2, config + " --set data.remainder=drop --set train.batch_size=16");
  INFO(small.output);
  CHECK(small.exit_code != 0);
  CHECK_THAT(small.output, HasSubstr("24 samples"));
  CHECK(quiet(small.output));
  const auto shared = f.train(2, config + " --set data.val=" + f.dir() / "data/train-00000.h5");
  INFO(shared.output);
  CHECK(shared.exit_code != 0);
  CHECK_THAT(shared.output, HasSubstr("both read " + f.dir() / "data/train-00000.h5"));
  CHECK(quiet(shared.output));
  // A resume whose model differs from the checkpoint's.
  // Under a plain mpirun each rank's stdout is a pseudo-terminal, whatever mpirun's own
  // is (here a pipe): progress auto prints lines, no carriage-return bar.
  const auto finished = f.train(2, config + " --set train.steps=4 --set logging.progress=auto");
  REQUIRE(finished.exit_code == 0);
  CHECK(finished.output.find('\r') == std::string::npos);
  CHECK_THAT(finished.output, HasSubstr("step 4/4"));
  const auto changed = f.train(2, config + " --resume auto --set model.base_channels=4");
  INFO(changed.output);
  CHECK(changed.exit_code != 0);
  CHECK_THAT(changed.output, HasSubstr("the checkpoint's model differs from the config's"));
  CHECK(quiet(changed.output));
  const auto folder = f.train(2, config + " --resume " + f.run_dir() + " --set run.dir=" + f.dir() / "other");
  INFO(folder.output);
  CHECK(folder.exit_code != 0);
  CHECK_THAT(folder.output, HasSubstr("is a folder") && HasSubstr("--resume auto"));
  CHECK(quiet(folder.output));
  // A start that failed leaves the finished run finished.
  CHECK(std::filesystem::exists(f.run_dir() + "/DONE"));
}

TEST_CASE("a second Ctrl-C quits at once, without a checkpoint", "[train][e2e]") {
  TrainFixture f;
  // Slow steps (1500 micro-batches, seconds each): both signals land in step 1.
  const std::string config = f.write_config(
      "train: {batch_size: 2, steps: 4, accumulation: 1500}\n"
      "schedule: {warmup_steps: 1}\n" +
      dpunet::test::kOnlyStopCheckpoints);
  // SIGINT restored to its default for the background job, as a terminal's job has it.
  const auto result = f.interrupt("env --default-signal=INT OMP_NUM_THREADS=1 " DPUNET_BINARY " train " + config,
                                  "training ", "kill -INT $job; sleep 0.5; kill -INT $job");
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=130 "));  // ended by the second SIGINT
  CHECK_THAT(log, HasSubstr("Ctrl-C again to quit without one") && !HasSubstr("stopped by a signal"));
  CHECK(dpunet::checkpoint::CheckpointStore(f.run_dir()).list().empty());
}

TEST_CASE("ranks started with different configs stop together, naming the first difference", "[train][e2e]") {
  TrainFixture f;
  const std::string config = f.write_config();
  // An MPMD mpirun: rank 0 with larger gradient buckets than rank 1.
  const auto job = dpunet::test::run_command(
      "OMP_NUM_THREADS=1 timeout 120 " DPUNET_MPI_LAUNCHER " 1 " DPUNET_BINARY " train " + config +
      " --set distributed.bucket_mb=2 : -np 1 " DPUNET_BINARY " train " + config + " 2>&1");
  INFO(job.output);
  CHECK(job.exit_code != 0);
  CHECK(job.exit_code != 124);
  CHECK_THAT(job.output, HasSubstr("the resolved config differs between rank 1 and rank 0") &&
                             HasSubstr("distributed.bucket_mb: 2 on rank 0 but distributed.bucket_mb: 25 here"));
  CHECK_THAT(job.output, !HasSubstr("MPI_ABORT"));
}

TEST_CASE("a rank that stops answering ends the job with a stall naming distributed.timeout_s", "[train][e2e]") {
  TrainFixture f;
  // No checkpoint snapshot, which rank 1 would wait for under start-up's longer timeout.
  const std::string config = f.write_config("train: {batch_size: 2, steps: 100000}\ndistributed: {timeout_s: 10}\n" +
                                            dpunet::test::kOnlyStopCheckpoints);
  const auto result = stop_rank(f, config, 0);
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=") && !HasSubstr("exit=0 "));
  CHECK(seconds_of(result.output) >= 0);
  CHECK(seconds_of(result.output) <= 60);  // the 10 s timeout, and time to end the job, on a busy machine
  CHECK_THAT(log, HasSubstr("has not completed after 10 s [rank 1 ") &&
                      HasSubstr("(distributed.timeout_s sets this wait, at least 300 s at start-up, for the first "
                                "step and for a checkpoint's snapshot)"));
}

TEST_CASE("a rank that stops while rank 0 writes a checkpoint is seen within distributed.timeout_s", "[train][e2e]") {
  // Every step saves, and each save's fsync takes 2 s: rank 1 spends nearly all its time
  // waiting for the write in votes, and is stopped there. Rank 0 then snapshots the next
  // checkpoint and meets nobody: it must see that within its 12 s, not start-up's 300 s.
  TrainFixture f;
  const std::string config = f.write_config(
      "train: {batch_size: 2, steps: 100000}\ndistributed: {timeout_s: 12}\n"
      "checkpoint: {every_steps: 1, keep_last: 2}\n");
  const auto result = stop_rank(f, config, 1, "DPUNET_TEST_FSYNC_DELAY_S=2 LD_PRELOAD=" DPUNET_SLOW_CHECKPOINT_FSYNC);
  const std::string log = dpunet::read_file(f.log_path());
  INFO(result.output << log);
  CHECK_THAT(result.output, HasSubstr("exit=") && !HasSubstr("exit=0 "));
  CHECK(seconds_of(result.output) >= 0);
  CHECK(seconds_of(result.output) <= 60);
  CHECK_THAT(log, HasSubstr("has not completed after 12 s [rank 0 "));
}

TEST_CASE("a stop's checkpoint is on disk before any rank exits for requeue", "[train][e2e]") {
  // Only the stop writes a checkpoint, and its fsync takes 4 s: every rank waits for it in
  // votes (a launcher that ends the job at the first rank's exit code 75, as srun
  // --kill-on-bad-exit does, would otherwise stop rank 0 while it writes).
  TrainFixture f;
  const std::string config = f.write_config("train: {batch_size: 2, steps: 100000}\ndistributed: {timeout_s: 10}\n" +
                                            dpunet::test::kOnlyStopCheckpoints);
  std::string command =
      "DPUNET_TEST_FSYNC_DELAY_S=4 LD_PRELOAD=" DPUNET_SLOW_CHECKPOINT_FSYNC " " + f.train_command(2, config);
  command = command.substr(0, command.rfind(" 2>&1"));
  const auto result = f.interrupt(command, "step 3/", "kill -USR1 $(pgrep -P $job)");
  const std::string output = dpunet::read_file(f.log_path());
  INFO(output);
  CHECK_THAT(result.output, HasSubstr("exit=75"));
  CHECK_THAT(output, HasSubstr(" waits for its checkpoint, still being written") &&
                         HasSubstr(": its checkpoint is written, after") && HasSubstr("stopped by a signal at step"));
  CHECK_THAT(output, !HasSubstr("stall") && !HasSubstr("timed out"));
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  CHECK(store.latest_valid([](const std::string&) {}).has_value());
}

TEST_CASE("a checkpoint still being written when the next is due is waited for in votes, and said", "[train][e2e]") {
  TrainFixture f;
  // Each checkpoint's fsync takes 4 s; one is due every 2 steps, so the next finds the
  // previous one still being written. The ranks vote every 2.5 s (a quarter of the
  // timeout) meanwhile, each vote under the timeout.
  const std::string config = f.write_config("distributed: {timeout_s: 10}\n");
  const auto run = dpunet::test::run_command(
      "DPUNET_TEST_FSYNC_DELAY_S=4 LD_PRELOAD=" DPUNET_SLOW_CHECKPOINT_FSYNC " " + f.train_command(2, config));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, HasSubstr("step 4 waits for the previous checkpoint, still being written") &&
                             HasSubstr("the previous checkpoint is written, after"));
  CHECK_THAT(run.output, !HasSubstr("stall") && !HasSubstr("timed out"));
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  for (const int64_t step : {2, 4, 6, 8}) CHECK(std::filesystem::exists(store.path_for_step(step)));
}
