// End-to-end training runs for tests: a small synthetic dataset, a tiny config, and
// the `dpunet train` command line for 1 rank (no mpirun) or N ranks (mpirun).
#pragma once

#include <string>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace dpunet::test {

class TrainFixture {
 public:
  TrainFixture();

  const TempDir& dir() const { return dir_; }
  std::string run_dir() const { return dir_ / "run"; }
  // Writes cfg.yaml (the tiny config plus `extra` YAML appended) and returns its path.
  std::string write_config(const std::string& extra = "") const;
  // The shell command that trains with `ranks` ranks; output goes to stdout.
  std::string train_command(int ranks, const std::string& arguments) const;
  CommandResult train(int ranks, const std::string& arguments) const;
  // Runs `command` in the background with its output in log_path(), waits until the
  // log shows `wait_for`, runs the shell line `action` ($job is the command's pid) and
  // waits for the command. The output is "exit=<code> seconds=<from action to end>".
  CommandResult interrupt(const std::string& command, const std::string& wait_for, const std::string& action) const;
  std::string log_path() const { return dir_ / "log"; }
  // After a run that `log` says a signal stopped at step N: the newest valid checkpoint
  // is step N's, and a 2-rank `--resume auto` run (stopped early to keep tests short)
  // resumes from exactly it.
  void check_resumes_from_stop(const std::string& config, const std::string& log) const;

 private:
  TempDir dir_;
};

// The step N of the "stopped by a signal at step N" line in a run's log (REQUIREs one).
int64_t signalled_stop_step(const std::string& log);

// A shell word for `pgrep -f`: the training ranks started on `config` (a path matched literally).
std::string training_rank_pattern(const std::string& config);
// A shell command substitution giving the pid of training rank `rank` started on `config`.
std::string training_rank_pid(const std::string& config, int rank);

// A write_config section with no checkpoint by count, at epoch ends or on a new best:
// the one a stopped run leaves is the stop's own.
inline const std::string kOnlyStopCheckpoints = "checkpoint: {every_steps: 0, every_epoch: false, keep_best: false}\n";

// The model weights stored in a checkpoint, flattened in parameter order.
std::vector<std::pair<std::string, at::Tensor>> checkpoint_weights(const std::string& path);
// Both checkpoints hold the same weights and buffers, bit for bit; with
// `parameters_only`, BatchNorm's running statistics (which a training step moves
// whatever the learning rate) are left out.
void require_same_weights(const std::string& a, const std::string& b, bool parameters_only = false);
// Both checkpoints hold the same optimizer state (AdamW's moments, SGD's momentum) for
// every parameter, bit for bit.
void require_same_optimizer_state(const std::string& a, const std::string& b);

}  // namespace dpunet::test
