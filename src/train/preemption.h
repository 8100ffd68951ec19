// Preemption: SIGTERM, SIGUSR1 or a first SIGINT (Ctrl-C) set a flag (the handler does
// nothing else, but for Ctrl-C says so); the train loop reduces the flag over all ranks
// at each step boundary, so every rank stops at the same step, rank 0 checkpoints, and
// the process exits with kPreemptedExitCode. A second Ctrl-C ends the process at once.
#pragma once

namespace dpunet::train {

// EX_TEMPFAIL: "try again later". slurm/train.sbatch requeues the job on it.
inline constexpr int kPreemptedExitCode = 75;

// Installs the handlers; calling it again is harmless, and a signal already seen stays
// seen. `dpunet train` installs them first thing, before MPI starts up.
void install_preemption_handlers();
// True once SIGTERM, SIGUSR1 or SIGINT arrived in this process.
bool preemption_requested();
// The signal that arrived (0 when none), for the log.
int preemption_signal();

}  // namespace dpunet::train
